"""robopolicy's LIBERO client: evaluates a policy served by `robopolicy serve` (or any openpi-compatible
server) in the real LIBERO benchmark, and records scripted-expert demonstrations there as RLDS.

It runs in its own environment (LIBERO needs robosuite 1.4 and MuJoCo 3; robopolicy uses MuJoCo 4)
with robopolicy's client package alone: no JAX, nothing else of robopolicy. See docs/libero.md.
"""

import logging
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering (set before MuJoCo loads a GL backend)
# robosuite advises, at every import, writing a private macro file, which the client does not need.
logging.getLogger("robosuite_logs").addFilter(lambda record: "macro" not in record.getMessage())
