"""`robopolicy doctor`: is this machine ready to train and evaluate?

Each check prints one line, `ok` or `FAIL`, with what it found: JAX's devices and processes, the
versions of the libraries robopolicy runs on, the rendering backend with the time of a 64×64
offscreen render, whether the compilation cache folder is writable, and, with `--ray-address`,
whether the Ray cluster answers (from a separate process, given `ray_timeout_s`). The exit status is
0 when every required check passes, 1 otherwise.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class DoctorConfig:
    """What to check besides this machine.

    Attributes:
        ray_address: also check that the Ray cluster at this address answers, e.g. "ray://head:10001"
            or "auto" (empty: only report Ray's version).
        ray_timeout_s: seconds to wait for the Ray cluster.
    """

    ray_address: str = ""
    ray_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.ray_timeout_s <= 0:
            raise ValueError(f"DoctorConfig.ray_timeout_s must be > 0, got {self.ray_timeout_s}")


@dataclass(frozen=True)
class Check:
    """One line of the report; `ok` False on a required check makes the exit status 1."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.detail}"


# (distribution, required): the libraries robopolicy runs on, as pip names them.
PACKAGES = (
    ("jax", True),
    ("jaxlib", True),
    ("flax", True),
    ("optax", True),
    ("orbax-checkpoint", True),
    ("mujoco", True),
    ("grain", True),
    ("tensorflow-datasets", True),
    ("ray", False),
)


def check_devices() -> Check:
    import jax

    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    return Check(
        "devices",
        True,
        f"{jax.default_backend()}: {len(devices)} device(s) ({', '.join(kinds)}), "
        f"{jax.local_device_count()} local; process {jax.process_index()} of {jax.process_count()}",
    )


def check_versions() -> list[Check]:
    checks = [Check("python", True, f"{platform.python_version()} ({sys.executable})")]
    for name, required in PACKAGES:
        try:
            checks.append(Check(name, True, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            extra = "" if required else " (optional: pip install 'robopolicy[ray]')"
            checks.append(Check(name, not required, f"not installed{extra}"))
    return checks


_SCENE = """<mujoco><worldbody><light pos="0 0 2"/><geom type="box" size=".1 .1 .1"/>
<camera name="c" pos="0 -1 .3" xyaxes="1 0 0 0 .3 1"/></worldbody></mujoco>"""


def check_rendering() -> Check:
    """A 64×64 offscreen render with the backend `MUJOCO_GL` names (robopolicy.sim's default: egl)."""
    import robopolicy.sim  # noqa: F401  (sets MUJOCO_GL's default before mujoco loads)

    backend = os.environ.get("MUJOCO_GL", "")
    try:
        import mujoco

        t0 = time.perf_counter()
        model = mujoco.MjModel.from_xml_string(_SCENE)
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)
        with mujoco.Renderer(model, height=64, width=64) as renderer:
            renderer.update_scene(data, camera="c")
            image = renderer.render()
        seconds = time.perf_counter() - t0
    except Exception as e:  # any failure of the GL stack is the finding
        return Check("rendering", False, f"MUJOCO_GL={backend}: 64x64 render failed: {type(e).__name__}: {e}")
    if image.shape != (64, 64, 3) or not image.any():
        return Check("rendering", False, f"MUJOCO_GL={backend}: 64x64 render came back blank")
    return Check("rendering", True, f"MUJOCO_GL={backend}: 64x64 offscreen render in {seconds * 1000:.0f} ms")


def check_compile_cache() -> Check:
    """The compilation cache folder exists (or can be made) and takes a file."""
    from etils import epath

    from robopolicy.compile_cache import CACHE_ENV, cache_dir

    folder = cache_dir()
    if folder is None:
        return Check("compile cache", True, f"off ({CACHE_ENV}=off or --no-compile-cache)")
    try:
        path = epath.Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".robopolicy-doctor-{uuid.uuid4().hex}"
        probe.write_text("ok")
        probe.unlink()
    except Exception as e:  # a folder we cannot write is the finding, whatever the filesystem raises
        return Check("compile cache", False, f"{folder}: not writable ({type(e).__name__}: {e})")
    return Check("compile cache", True, f"{folder} (writable)")


_RAY_PROBE = """
import sys, ray
ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False, logging_level="ERROR")
r = ray.cluster_resources()
print(f"{len([n for n in ray.nodes() if n['Alive']])} node(s), CPU {r.get('CPU', 0):g}, GPU {r.get('GPU', 0):g}")
"""


def check_ray(address: str, timeout_s: float) -> Check:
    """Whether the cluster at `address` answers, asked from a separate process (a cluster that is not
    there can keep `ray.init` retrying for minutes)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _RAY_PROBE, address], capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        return Check("ray cluster", False, f"{address}: no answer within {timeout_s:g} s")
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return Check("ray cluster", False, f"{address}: {lines[-1] if lines else f'exit {done.returncode}'}")
    return Check("ray cluster", True, f"{address}: {done.stdout.strip()}")


def run_doctor(config: DoctorConfig, emit: Callable[[str], None] = print) -> int:
    """Run every check, printing each line as it finishes; 0 when all pass, else 1."""
    checks: list[Check] = []

    def report(found: Check | list[Check]) -> None:
        for check in found if isinstance(found, list) else [found]:
            checks.append(check)
            emit(check.line())

    report(check_versions())
    report(check_devices())
    report(check_rendering())
    report(check_compile_cache())
    if config.ray_address:
        report(check_ray(config.ray_address, config.ray_timeout_s))
    failed = [c.name for c in checks if not c.ok]
    emit(
        f"{len(checks) - len(failed)}/{len(checks)} checks passed"
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0
