"""Scene composition for composed-scene specs: robot + table + library objects + lights + cameras, as MJCF.

Graspable objects are free bodies; fixtures (plates, baskets, cabinets, buttons, ...) are mocap
bodies, which stay put under contact and whose pose is part of the saved state, so that layouts can vary
per episode without a joint per fixture. One `userdata` slot holds the cue choice of memory tasks.
"""

from __future__ import annotations

import numpy as np

from robopolicy.sim import panda
from robopolicy.sim.object_library import COLORS, Role
from robopolicy.sim.rotations import look_at_xyaxes
from robopolicy.sim.scene import AGENTVIEW_CAMERA, PHYSICS_TIMESTEP, TABLE_HEIGHT, RenderConfig
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
    render = render or RenderConfig()
    robot_mjcf = panda.panda_mjcf(robot or panda.PandaConfig())
    buffer = max(640, int(max_image_size))
    agent_axes = look_at_xyaxes(_AGENTVIEW_POS, _AGENTVIEW_TARGET)
    bodies = "\n".join(_object_body(o) for o in spec.objects)
    return f"""<mujoco model="{spec.name}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{PHYSICS_TIMESTEP}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <size nuserdata="1"/>
  <visual>
    <global offwidth="{buffer}" offheight="{buffer}"/>
    <quality numslices="{render.slices}" numstacks="{max(2, render.slices // 2)}" offsamples="{render.offsamples}" shadowsize="{render.shadowsize if render.shadows else 0}"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.45 0.45 0.45" specular="0.05 0.05 0.05"/>
    <rgba haze="0.15 0.17 0.2 1"/>
  </visual>
  <default>
    {panda.panda_defaults()}
    <default class="world">
      <geom contype="1" conaffinity="1" group="0"/>
    </default>
  </default>
  <worldbody>
    <light name="top" pos="0.4 0 2.5" dir="0 0 -1" directional="true" diffuse="0.55 0.55 0.55"
           specular="0.1 0.1 0.1" castshadow="{"true" if render.shadows else "false"}"/>
    <geom name="floor" type="plane" size="3 3 0.1" pos="0 0 {-TABLE_HEIGHT}" rgba="0.22 0.24 0.27 1" class="world"/>
    <geom name="table" type="box" size="0.6 0.65 0.02" pos="0.3 0 -0.02" rgba="0.78 0.66 0.5 1" class="world"/>
    <camera name="{AGENTVIEW_CAMERA}" pos="{_fmt(_AGENTVIEW_POS)}" xyaxes="{_fmt(agent_axes)}"
            fovy="{_AGENTVIEW_FOVY}"/>
    {robot_mjcf.body}
    {bodies}
  </worldbody>
  <contact>
    {robot_mjcf.contact_excludes}
  </contact>
  <actuator>
    {robot_mjcf.actuators}
  </actuator>
</mujoco>
"""
