"""A task's scene as one MJCF string: table, lights, the front camera, the task's objects and a robot.

World frame: origin at the robot base on the table top, x away from the robot, z up (metres).
Graspable objects are free bodies; fixtures (plates, baskets, cabinets, buttons, ...) are mocap
bodies, which stay put under contact and whose pose is part of the saved state, so that layouts can vary
per episode without a joint per fixture. One `userdata` slot holds the cue choice of memory tasks.
The robot comes in as MJCF fragments (`RobotMjcf`), so the scene does not depend on which robot it holds.
Colours, sizes and camera placement keep objects and gripper distinguishable at 64×64 pixels: saturated
objects, a white robot, a light-wood table, a dark floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robopolicy.tasks.object_library import COLORS, Role
from robopolicy.tasks.rotations import look_at_xyaxes
from robopolicy.tasks.spec import ObjectSpec, TaskSpec

PHYSICS_TIMESTEP = 0.002  # s
CONTROL_HZ = 20
SUBSTEPS = round(1.0 / (CONTROL_HZ * PHYSICS_TIMESTEP))  # 25 physics steps per action
TABLE_HEIGHT = 0.8  # m, table top above the floor
AGENTVIEW_CAMERA = "agentview"
USERDATA_CUE = 0  # userdata slot of the cue choice index


@dataclass(frozen=True)
class RenderConfig:
    """Offscreen rendering options; they dominate render cost on CPU.

    Defaults (no shadows, no reflections, no multisampling) render two 128² cameras at hundreds of
    frames/s with llvmpipe; MuJoCo's own defaults give ~8 frames/s there.

    shadows: cast shadows from the lights.
    reflections: mirror-like reflections on reflective materials.
    offsamples: multisample anti-aliasing samples for the offscreen buffer (0 = off).
    shadowsize: shadow map size in pixels; only used when `shadows` is on.
    slices: tessellation of round geoms (MuJoCo's numslices; numstacks is half). The default 28
        costs ~2.5× the render time of 12 on llvmpipe, with no visible gain at 64-224 px.
    """

    shadows: bool = False
    reflections: bool = False
    offsamples: int = 0
    shadowsize: int = 1024
    slices: int = 12

    def __post_init__(self) -> None:
        if not 4 <= self.slices <= 64:
            raise ValueError(f"RenderConfig.slices must be in [4, 64], got {self.slices}")
        if self.offsamples not in (0, 1, 2, 4, 8, 16):
            raise ValueError(
                f"RenderConfig.offsamples must be one of 0, 1, 2, 4, 8, 16, got {self.offsamples}"
            )
        if self.shadowsize <= 0:
            raise ValueError(f"RenderConfig.shadowsize must be positive, got {self.shadowsize}")


@dataclass(frozen=True)
class RobotMjcf:
    """MJCF fragments of a robot, to be placed into a scene's sections."""

    defaults: str  # <default> classes the robot's geoms use
    body: str  # the body tree, in world coordinates
    actuators: str
    contact_excludes: str


def _fmt(values: np.ndarray | tuple[float, ...]) -> str:
    # Fixed formatting keeps the generated XML (and so its hash) stable across runs.
    return " ".join(f"{float(v):.6g}" for v in values)


def _object_body(obj: ObjectSpec) -> str:
    kind = obj.kind
    x = float(np.mean(obj.x[0]))
    y = float(np.mean(obj.y[0]))
    inner = kind.body(obj.name, _fmt((*COLORS[obj.color], 1.0)))
    if kind.role is Role.GRASPABLE:
        return (
            f'<body name="{obj.name}" pos="{x:.6g} {y:.6g} {kind.half_height:.6g}">\n'
            f'<freejoint name="{obj.name}_free"/>\n{inner}\n</body>'
        )
    return f'<body name="{obj.name}" mocap="true" pos="{x:.6g} {y:.6g} 0">\n{inner}\n</body>'


def scene_mjcf(
    spec: TaskSpec, robot: RobotMjcf, render: RenderConfig | None = None, max_image_size: int = 640
) -> str:
    """Full MJCF of the task's scene with `robot` in it. `max_image_size` sizes the offscreen framebuffer
    (pixels). Every task is built here, so physics, lighting and render options are the same across tasks.
    """
    render = render or RenderConfig()
    bodies = "\n".join(_object_body(o) for o in spec.objects)
    buffer = max(640, int(max_image_size))
    camera = spec.agentview
    agent_axes = look_at_xyaxes(np.array(camera.pos), np.array(camera.target))
    return f"""<mujoco model="{spec.name}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{PHYSICS_TIMESTEP}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <size nuserdata="{USERDATA_CUE + 1}"/>
  <visual>
    <global offwidth="{buffer}" offheight="{buffer}"/>
    <quality numslices="{render.slices}" numstacks="{max(2, render.slices // 2)}" offsamples="{render.offsamples}" shadowsize="{render.shadowsize if render.shadows else 0}"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.45 0.45 0.45" specular="0.05 0.05 0.05"/>
    <rgba haze="0.15 0.17 0.2 1"/>
  </visual>
  <default>
    {robot.defaults}
    <default class="world">
      <geom contype="1" conaffinity="1" group="0"/>
    </default>
  </default>
  <worldbody>
    <light name="top" pos="0.4 0 2.5" dir="0 0 -1" directional="true" diffuse="0.55 0.55 0.55"
           specular="0.1 0.1 0.1" castshadow="{"true" if render.shadows else "false"}"/>
    <geom name="floor" type="plane" size="3 3 0.1" pos="0 0 {-TABLE_HEIGHT}" rgba="0.22 0.24 0.27 1" class="world"/>
    <geom name="table" type="box" size="0.6 0.65 0.02" pos="0.3 0 -0.02" rgba="0.78 0.66 0.5 1" class="world"/>
    <camera name="{AGENTVIEW_CAMERA}" pos="{_fmt(camera.pos)}" xyaxes="{_fmt(agent_axes)}"
            fovy="{camera.fovy}"/>
    {robot.body}
    {bodies}
  </worldbody>
  <contact>
    {robot.contact_excludes}
  </contact>
  <actuator>
    {robot.actuators}
  </actuator>
</mujoco>
"""
