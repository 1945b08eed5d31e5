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
