"""A non-editable install (the built wheel) still finds envs/ and datasets/ content, and tasks in a
user's own folder (ROBOPOLICY_TASK_PATH), whose initial states it writes there."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_carries_envs_and_datasets(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    wheel = next(tmp_path.glob("robopolicy-*.whl"))
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    names = zipfile.ZipFile(wheel).namelist()
    assert not any(
        n.startswith(("envs/", "datasets/")) for n in names
    )  # robopolicy is the only top-level package

    user = tmp_path / "my_tasks"
    (user / "user_task").mkdir(parents=True)
    spec = (ROOT / "envs" / "cube_on_plate" / "task.toml").read_text()
    (user / "user_task" / "task.toml").write_text(spec.replace('"cube_on_plate"', '"user_task"'))
    probe = (
        "from robopolicy.paths import envs_dir, datasets_dir\n"
        "from robopolicy.sim.init_states import save_init_states\n"
        "from robopolicy.sim import load_init_states\n"
        "from robopolicy.tasks.spec import load_task_spec\n"
        "from robopolicy.data.rlds_writer import load_builder_module\n"
        "assert '_bundled' in str(envs_dir()) and '_bundled' in str(datasets_dir()), envs_dir()\n"
        "print(load_task_spec('cube_on_plate').instruction, load_init_states('cube_on_plate').shape[0])\n"
        "print(load_builder_module().RobopolicySim.__name__)\n"
        "print(save_init_states('user_task', 2), load_init_states('user_task').shape[0])\n"
    )
    # Run from an empty folder with only the unpacked wheel ahead of the environment's site-packages.
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={
            "PYTHONPATH": str(site),
            "MUJOCO_GL": "egl",
            "PATH": "/usr/bin:/bin",
            "ROBOPOLICY_TASK_PATH": str(user),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "50" in proc.stdout and "RobopolicySim" in proc.stdout
    assert f"{user / 'user_task' / 'init_states.npz'} 2" in proc.stdout


# Import name → distribution name, where they differ.
_DISTRIBUTION = {
    "PIL": "pillow",
    "absl": "absl-py",
    "orbax": "orbax-checkpoint",
    "tensorflow_datasets": "tensorflow-datasets",
    "tensorboardX": "tensorboardx",
    "IPython": "ipython",
}


def _third_party_imports() -> dict[str, str]:
    """Top-level modules that robopolicy/ imports from outside the standard library → a file importing it."""
    import ast

    found: dict[str, str] = {}
    for path in sorted((ROOT / "robopolicy").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "robopolicy":
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def _declared() -> set[str]:
    """Distribution names in pyproject.toml's dependencies and optional dependencies (lower case)."""
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs.extend(extra)
    return {re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower() for spec in specs}


def test_every_imported_package_is_declared():
    declared = _declared()
    missing = {
        module: where
        for module, where in _third_party_imports().items()
        if _DISTRIBUTION.get(module, module).lower().replace("_", "-") not in declared
    }
    assert missing == {}, f"imported but not declared in pyproject.toml: {missing}"


def test_tested_majors_are_bounded_and_pinned():
    """The core libraries carry an upper bound, and constraints.txt pins every one of them."""
    import tomllib

    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    for name in ("jax", "flax", "orbax-checkpoint", "mujoco", "grain", "tensorflow-datasets", "optax"):
        spec = next(d for d in dependencies if d.split(">")[0].split("<")[0] == name)
        assert "<" in spec, f"{spec}: no upper bound"
        assert name in pinned, f"{name} is not pinned in constraints.txt"
