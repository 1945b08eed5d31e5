"""The policy-server client: openpi's wire format both ways, no JAX on import, robopolicy.client imports
nothing else of robopolicy, and the robopolicy-client distribution installs into a bare environment
and talks to a server."""

import ast
import subprocess
import sys
import textwrap
import zipfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from eval_fixtures import make_checkpoint
from openpi_client import msgpack_numpy
from serve_fixtures import ServerThread, observation

from robopolicy.client import WireError, packb, unpackb
from robopolicy.eval.policy_runner import PolicyRunner
from robopolicy.train.loaded_policy import load_policy

ROOT = Path(__file__).resolve().parents[1]
CLIENT = ROOT / "robopolicy" / "client"


def _equal(a, b):
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            _equal(a[k], b[k])
    elif isinstance(a, np.ndarray | np.generic):
        assert type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


MESSAGE = {
    "image": np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3),
    "state": np.array([0.5, -1.25, np.pi], np.float32),
    "big_endian": np.arange(4, dtype=">i4"),
    "transposed": np.arange(6, dtype=np.float64).reshape(2, 3).T,
    "flags": np.array([True, False]),
    "empty": np.zeros((0, 7), np.float32),
    "scalar": np.float32(2.5),
    "count": np.int64(-3),
    "prompt": "pick up the cube",
    "nested": {"timing": {"infer_ms": 1.5}, "list": [1, "two", None]},
}


def test_wire_format_is_openpi_both_ways():
    _equal(unpackb(msgpack_numpy.packb(MESSAGE)), MESSAGE)
    _equal(msgpack_numpy.unpackb(packb(MESSAGE)), MESSAGE)
    assert packb(MESSAGE) == msgpack_numpy.packb(MESSAGE)  # byte for byte
    for refused in (np.array([1 + 2j]), np.array([object()]), np.zeros(2, dtype=[("a", "<f4")])):
        with pytest.raises(TypeError, match="cannot send"):
            packb({"x": refused})


@pytest.mark.parametrize(
    "array",
    [
        {b"__ndarray__": True, b"data": b"\0" * 8, b"dtype": "|O", b"shape": [1]},
        {b"__ndarray__": True, b"data": b"\0" * 8, b"dtype": "<c8", b"shape": [1]},
        {b"__ndarray__": True, b"data": b"\0" * 8, b"dtype": "(2,)<f4", b"shape": [1]},
        {b"__ndarray__": True, b"data": b"\0" * 8, b"dtype": "bogus", b"shape": [1]},
        {b"__ndarray__": True, b"data": b"\0" * 7, b"dtype": "<f4", b"shape": [2]},
        {b"__ndarray__": True, b"data": b"\0" * 8, b"dtype": "<f4", b"shape": [-2, -1]},
        {b"__ndarray__": True, b"data": "text", b"dtype": "<f4", b"shape": [1]},
        {b"__npgeneric__": True, b"data": "x", b"dtype": "<f4"},
    ],
    ids=["object", "complex", "subarray", "unknown", "short", "negative", "not-bytes", "bad-scalar"],
)
def test_malformed_arrays_are_wire_errors(array):
    with pytest.raises(WireError):
        unpackb(packb({"x": array}))


def test_garbage_is_a_wire_error():
    for data in (b"\xc1", b"\x92\x01", packb({"a": 1}) + b"\x00", b""):
        with pytest.raises(WireError):
            unpackb(data)


def test_client_imports_neither_jax_nor_the_rest_of_robopolicy():
    for path in CLIENT.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert not name.startswith("robopolicy") or name.startswith("robopolicy.client"), (path, name)
    probe = "import sys, robopolicy.client; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    for heavy in ("jax", "jaxlib", "flax", "mujoco", "tensorflow", "orbax", "PIL"):
        assert f"'{heavy}'" not in loaded


CLIENT_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from robopolicy.client import PolicyClient

    rng = np.random.default_rng(0)
    obs = {
        "agentview": rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
        "wrist": rng.integers(0, 255, (16, 16, 3), dtype=np.uint8),
        "state": rng.normal(size=9).astype(np.float32),
    }
    with PolicyClient(sys.argv[1]) as client:
        client.reset(seed=4)
        np.save(sys.argv[2], client.infer(obs)["actions"])
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "flax", "mujoco", "robopolicy"))
    print(heavy)
""")


def test_client_distribution_installs_bare_and_talks_to_the_server(tmp_path):
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    built = [*build, "-w", str(wheels), str(ROOT / "clients" / "python")]
    subprocess.run(built, check=True, capture_output=True, timeout=300)
    wheel = next(wheels.glob("robopolicy_client-*.whl"))
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if not n.startswith("robopolicy_client-")}
    assert shipped == {f"robopolicy/client/{p.name}" for p in CLIENT.glob("*.py")}  # all of it, nothing else
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    deps = [f"{name}=={version(name)}" for name in ("numpy", "msgpack", "websockets")]
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps"]
    subprocess.run([*install, str(wheel), *deps], check=True, capture_output=True, timeout=300)
    (tmp_path / "client.py").write_text(CLIENT_SCRIPT)

    run_dir = make_checkpoint(tmp_path / "run")
    with ServerThread(run_dir) as server:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        done = subprocess.run(
            [str(python), "client.py", server.uri, "actions.npy"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (
        done.stdout.strip() == "['robopolicy', 'robopolicy.client', 'robopolicy.client.episode_log', "
        "'robopolicy.client.policy_client', 'robopolicy.client.wire']"
    )
    expected = PolicyRunner(load_policy(run_dir), seed=4).act(observation(np.random.default_rng(0)))
    np.testing.assert_allclose(np.load(tmp_path / "actions.npy")[0], expected, atol=1e-5)
