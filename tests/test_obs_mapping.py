"""The one image resize (aspect kept, padded) and observation mappings by name or TOML file."""

import numpy as np
import pytest

from robopolicy.data.image_resize import resize_with_pad
from robopolicy.data.obs_mapping import OBS_MAPPING_PATH_ENV, ObsMapping, load_obs_mapping
from robopolicy.errors import UserError


def test_resize_keeps_aspect_and_pads_with_black():
    wide = np.full((2, 10, 20, 3), 200, np.uint8)  # two images, 10 × 20
    out = resize_with_pad(wide, 8, 8)
    assert out.shape == (2, 8, 8, 3) and out.dtype == np.uint8
    # 20 → 8 wide, so 10 → 4 high, centred: rows 2..5 hold the image, the rest is padding.
    assert (out[:, 2:6] == 200).all() and (out[:, :2] == 0).all() and (out[:, 6:] == 0).all()
    tall = resize_with_pad(np.full((30, 10, 3), 7, np.uint8), 6, 6)
    assert (tall[:, 2:4] == 7).all() and (tall[:, :2] == 0).all() and (tall[:, 4:] == 0).all()


def test_resize_averages_when_shrinking_and_passes_the_right_size_through():
    # A 2-pixel checkerboard shrunk 4× becomes its mean grey: the filter covers every source pixel.
    board = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)[..., None].repeat(3, -1)
    small = resize_with_pad(board, 16, 16)
    assert np.abs(small.astype(int) - 127.5).max() <= 1
    assert resize_with_pad(small, 16, 16) is small
    with pytest.raises(ValueError, match="uint8"):
        resize_with_pad(board.astype(np.float32), 8, 8)


def test_openpi_libero_mapping_and_table_round_trip():
    mapping = load_obs_mapping("openpi_libero")
    assert dict(mapping.cameras) == {"observation/image": "agentview", "observation/wrist_image": "wrist"}
    assert (mapping.state, mapping.instruction, mapping.image_size) == ("observation/state", "prompt", 224)
    assert ObsMapping.from_table(mapping.to_table(), "metadata") == mapping
    obs = {
        "agentview": np.zeros((4, 4, 3), np.uint8),
        "wrist": np.ones((4, 4, 3), np.uint8),
        "state": np.zeros(8),
    }
    request = mapping.request(obs, "stack the bowls")
    assert set(request) == {"observation/image", "observation/wrist_image", "observation/state", "prompt"}
    assert request["observation/wrist_image"] is obs["wrist"]
    own = load_obs_mapping("robopolicy").for_cameras(("agentview", "wrist"))
    assert dict(own.cameras) == {"agentview": "agentview", "wrist": "wrist"} and own.state == "state"
    with pytest.raises(ValueError, match="camera"):
        mapping.for_cameras(("agentview", "side"))


def test_named_user_mappings_and_one_line_errors(tmp_path, monkeypatch):
    (tmp_path / "my_robot.toml").write_text(
        'cameras = { "cam_high" = "agentview" }\nstate = "qpos"\ninstruction = ""\n'
    )
    monkeypatch.setenv(OBS_MAPPING_PATH_ENV, str(tmp_path))
    mine = load_obs_mapping("my_robot")
    assert mine.name == "my_robot" and mine.state == "qpos" and not mine.instruction
    assert "task" not in mine.request({"agentview": np.zeros(1), "state": np.zeros(1)}, "task")
    (tmp_path / "bad.toml").write_text('cameras = { "a" = "agentview" }\nimage_size = "big"\n')
    (tmp_path / "dup.toml").write_text('cameras = { "state" = "agentview" }\n')
    for spec, needle in [
        ("nope", "unknown observation mapping 'nope'"),
        (str(tmp_path / "missing.toml"), "no such observation-mapping file"),
        ("bad", "field 'image_size' must be an integer"),
        ("dup", "request keys must be unique"),
    ]:
        with pytest.raises(UserError, match=needle) as e:
            load_obs_mapping(spec)
        assert "\n" not in str(e.value)
