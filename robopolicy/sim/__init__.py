"""MuJoCo simulation runtime: the tabletop env, a Panda-like robot, LIBERO-style control, goal checks,
the scripted expert, Gymnasium and vector envs, fixed initial states. Task definitions and scene
composition live in `robopolicy.tasks`.

Importing this package sets `MUJOCO_GL=egl` (headless GPU-less rendering through EGL) unless the
variable is already set; mujoco picks its GL backend when it is first imported, so this must run
before any submodule imports mujoco. Set `MUJOCO_GL=osmesa` beforehand to use OSMesa instead.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from robopolicy.sim.env import EnvConfig, TabletopEnv
from robopolicy.sim.expert import make_expert, run_expert_episode
from robopolicy.tasks.spec import TaskSpecError


def __getattr__(name: str) -> object:
    # Imported lazily: they pull in gymnasium and tyro, which a plain env does not need.
    if name == "load_init_states":
        from robopolicy.sim.init_states import load_init_states

        return load_init_states
    if name == "make":
        from robopolicy.sim.gym_env import make

        return make
    if name == "make_vector":
        from robopolicy.sim.vector_env import make_vector

        return make_vector
    raise AttributeError(f"module 'robopolicy.sim' has no attribute '{name}'")


__all__ = [
    "EnvConfig",
    "TabletopEnv",
    "TaskSpecError",
    "load_init_states",
    "make",
    "make_expert",
    "make_vector",
    "run_expert_episode",
]
