import os

# Headless rendering for every test; must be set before mujoco is imported.
os.environ.setdefault("MUJOCO_GL", "egl")
