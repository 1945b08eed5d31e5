"""Scene composition for composed-scene specs: robot + table + library objects + lights + cameras, as MJCF.

Graspable objects are free bodies; fixtures (plates, baskets, cabinets, buttons, ...) are mocap
bodies, which stay put under contact and whose pose is part of the saved state, so that layouts can vary
per episode without a joint per fixture. One `userdata` slot holds the cue choice of memory tasks.
"""

from __future__ import annotations

import numpy as np

from robopolicy.sim import panda
from robopolicy.sim.object_library import COLORS, Role
from robopolicy.sim.scene import RenderConfig, tabletop_mjcf
from robopolicy.sim.scene_spec import ObjectSpec, SceneSpec

# The composed layouts span x 0.35-0.8 m, y ±0.3 m, wider than cube_on_plate's: the front camera sits
# higher and looks down more steeply, still opposite the robot like LIBERO's agentview, so that the
# whole layout (cabinet included) fills a 128² frame and a 4.5 cm cube spans ~5 px.
_AGENTVIEW_POS = np.array([0.98, 0, 0.85])
_AGENTVIEW_TARGET = np.array([0.55, 0, 0.0])
_AGENTVIEW_FOVY = 38.0
USERDATA_CUE = 0  # userdata slot of the cue choice index


def _fmt(values: np.ndarray | tuple[float, ...]) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def _rgba(color: str) -> str:
    return _fmt((*COLORS[color], 1.0))


def _object_body(obj: ObjectSpec) -> str:
    kind = obj.kind
    x = float(np.mean(obj.x[0]))
    y = float(np.mean(obj.y[0]))
    inner = kind.body(obj.name, _rgba(obj.color))
    if kind.role is Role.GRASPABLE:
        return (
            f'<body name="{obj.name}" pos="{x:.6g} {y:.6g} {kind.half_height:.6g}">\n'
            f'<freejoint name="{obj.name}_free"/>\n{inner}\n</body>'
        )
    return f'<body name="{obj.name}" mocap="true" pos="{x:.6g} {y:.6g} 0">\n{inner}\n</body>'


def build_composed_scene_xml(
    spec: SceneSpec,
    render: RenderConfig | None = None,
    robot: panda.PandaConfig | None = None,
    max_image_size: int = 640,
) -> str:
    """Full MJCF of a composed scene. `max_image_size` sizes the offscreen framebuffer (pixels)."""
    bodies = "\n".join(_object_body(o) for o in spec.objects)
    return tabletop_mjcf(
        spec.name,
        bodies,
        camera_pos=_AGENTVIEW_POS,
        camera_target=_AGENTVIEW_TARGET,
        camera_fovy=_AGENTVIEW_FOVY,
        render=render,
        robot=robot,
        max_image_size=max_image_size,
        userdata=USERDATA_CUE + 1,
        table_leg=False,
    )
