import os
import tempfile
from pathlib import Path

# Headless rendering for every test; must be set before mujoco is imported.
os.environ.setdefault("MUJOCO_GL", "egl")

# Many tests compile the same tiny programs (in this process, in the other pytest worker, and in the
# CLI subprocesses they start, which inherit the variable): JAX's persistent compilation cache lets
# each be compiled once per machine. It stores compiled executables only, so results are unchanged.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / "robopolicy-tests-jax-cache")
)

# The tests run tiny programs for a few steps, so compiling them dominates: LLVM's optimisation
# passes at level 0 roughly halve a test's compile time (a transformer-diffusion train-and-act test:
# 78 s → 45 s on 2 cores). Subprocesses inherit the flag; speed figures come from benchmarks/, which
# do not load this file.
_FAST_COMPILE = "--xla_backend_optimization_level=0"
if _FAST_COMPILE not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FAST_COMPILE}".strip()


def pytest_collection_modifyitems(config, items):
    # Slow tests first (a stable sort keeps the rest in file order): the pytest-xdist workers then
    # start the minute-long ones early and fill in with short ones, instead of one worker finishing
    # a two-minute test alone at the end.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
