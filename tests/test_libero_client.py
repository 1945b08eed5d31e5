"""The LIBERO client (clients/libero) converts LIBERO observations the way openpi's LIBERO example
does (examples/libero/main.py in openpi): both images rotated by 180° and resized with padding to the
size sent, the state = end-effector position, its axis-angle (robosuite's formula, angle 2·acos(w)),
the two gripper fingers. Checked on an observation recorded in LIBERO
(`robopolicy-libero record-observation`), by running the client's conversion in the client's own
environment (`make libero-client`); skipped where that environment is absent."""

import math
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from robopolicy.data.image_resize import resize_with_pad

ROOT = Path(__file__).resolve().parents[1]
CLIENT_PYTHON = ROOT / "clients" / "libero" / ".venv" / "bin" / "python"
FIXTURE = ROOT / "tests" / "fixtures" / "libero" / "libero_spatial_task0_state0.npz"

pytestmark = pytest.mark.skipif(
    not CLIENT_PYTHON.exists(), reason="the LIBERO client's environment is absent (make libero-client)"
)

CONVERT = textwrap.dedent("""
    import sys
    import numpy as np
    from robopolicy_libero.observation import OPENPI_KEYS, policy_request, request_keys

    raw = dict(np.load(sys.argv[1]))
    instruction = str(raw["instruction"])
    openpi = policy_request(raw, OPENPI_KEYS, 224, instruction)
    ours_keys = request_keys({"server": "robopolicy", "obs_mapping": {
        "cameras": {"agentview": "agentview", "wrist": "wrist"}, "state": "state", "instruction": "prompt"}})
    ours = policy_request(raw, ours_keys, 64, instruction)
    np.savez(sys.argv[2], **{"openpi:" + k: v for k, v in openpi.items()}, **{"ours:" + k: v for k, v in ours.items()})
    heavy = sorted({m.split(".")[0] for m in sys.modules} & {"jax", "flax", "tensorflow", "robosuite", "libero"})
    print(heavy)
""")


def _openpi_axis_angle(quat: np.ndarray) -> np.ndarray:
    """openpi's LIBERO example: robosuite's quat2axisangle on an (x, y, z, w) quaternion."""
    w = np.clip(quat[3], -1.0, 1.0)
    den = np.sqrt(1.0 - w * w)
    return np.zeros(3) if math.isclose(den, 0.0) else quat[:3] * 2.0 * math.acos(w) / den


def test_observation_conversion_follows_openpis_libero_example(tmp_path):
    out = tmp_path / "request.npz"
    done = subprocess.run(
        [str(CLIENT_PYTHON), "-c", CONVERT, str(FIXTURE), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"  # the conversion needs neither the simulator nor JAX
    raw, sent = np.load(FIXTURE), np.load(out)
    assert raw["agentview_image"].shape == (256, 256, 3)  # as LIBERO renders for openpi and its datasets

    for key, camera in [
        ("observation/image", "agentview_image"),
        ("observation/wrist_image", "robot0_eye_in_hand_image"),
    ]:
        upright = raw[camera][::-1, ::-1]
        np.testing.assert_array_equal(sent[f"openpi:{key}"], resize_with_pad(upright, 224, 224))
        # The rotation matters: the unrotated render is another image.
        assert np.abs(sent[f"openpi:{key}"].astype(int) - resize_with_pad(raw[camera], 224, 224)).mean() > 10
    np.testing.assert_array_equal(
        sent["ours:agentview"], resize_with_pad(raw["agentview_image"][::-1, ::-1], 64, 64)
    )
    np.testing.assert_array_equal(
        sent["ours:wrist"], resize_with_pad(raw["robot0_eye_in_hand_image"][::-1, ::-1], 64, 64)
    )

    state = np.concatenate(
        [raw["robot0_eef_pos"], _openpi_axis_angle(raw["robot0_eef_quat"]), raw["robot0_gripper_qpos"]]
    )
    assert sent["openpi:observation/state"].dtype == np.float32
    np.testing.assert_allclose(sent["openpi:observation/state"], state, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(sent["ours:state"], sent["openpi:observation/state"])
    # The gripper points down: an axis-angle of about π about an axis near x.
    assert abs(np.linalg.norm(state[3:6]) - math.pi) < 0.1
    assert str(sent["openpi:prompt"]) == str(raw["instruction"]) == str(sent["ours:prompt"])
