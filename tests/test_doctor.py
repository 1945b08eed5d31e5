"""`robopolicy doctor`: one ok/FAIL line per check, exit status 1 when a required check fails."""

from robopolicy.cli import main
from robopolicy.compile_cache import JAX_CACHE_DIR_ENV
from robopolicy.doctor import DoctorConfig, run_doctor


def test_doctor_passes_here_and_names_each_check(capsys):
    assert main(["doctor"]) == 0
    lines = capsys.readouterr().out.splitlines()
    checks = {line.split(":")[0].split()[-1] for line in lines[:-1]}
    assert {"jax", "flax", "orbax-checkpoint", "mujoco", "grain", "devices", "rendering", "cache"} <= checks
    assert all(line.startswith("ok ") for line in lines[:-1])
    assert "64x64 offscreen render in" in next(line for line in lines if "rendering" in line)
    assert lines[-1] == f"{len(lines) - 1}/{len(lines) - 1} checks passed"


def test_doctor_fails_on_unwritable_cache_and_absent_ray_cluster(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv(JAX_CACHE_DIR_ENV, str(tmp_path / "file" / "cache"))  # under a file: unwritable
    lines: list[str] = []
    assert run_doctor(DoctorConfig(ray_address="127.0.0.1:1", ray_timeout_s=2), lines.append) == 1
    failed = [line for line in lines if line.startswith("FAIL")]
    assert len(failed) == 2
    assert "compile cache" in failed[0] and "not writable" in failed[0]
    assert "ray cluster: 127.0.0.1:1" in failed[1]
    assert lines[-1].endswith("failed: compile cache, ray cluster")
