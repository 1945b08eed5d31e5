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
