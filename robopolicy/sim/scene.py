"""Scene composition: robot + table + red cube + blue plate + lights + cameras, as one MJCF string.

World frame: origin at the robot base on the table top, x away from the robot, z up (metres).
Colours, sizes and camera placement are chosen so that cube, plate and gripper stay distinguishable at
64×64 pixels: saturated red cube, saturated blue plate, white robot, light-wood table, dark floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from robopolicy.sim import panda
from robopolicy.sim.rotations import look_at_xyaxes
from robopolicy.sim.task_spec import TaskSpec

PHYSICS_TIMESTEP = 0.002  # s
CONTROL_HZ = 20
SUBSTEPS = round(1.0 / (CONTROL_HZ * PHYSICS_TIMESTEP))  # 25 physics steps per action

PLATE_HALF_HEIGHT = 0.007  # m
TABLE_HEIGHT = 0.8  # m, table top above the floor
AGENTVIEW_CAMERA = "agentview"
CAMERAS: tuple[str, ...] = (AGENTVIEW_CAMERA, panda.WRIST_CAMERA)

# Front camera, like LIBERO's agentview: opposite the robot, above the table, looking at the workspace.
# Framed tightly on the object regions (x 0.40–0.62, y ±0.2) so a 4.5 cm cube spans ~5 px at 64×64.
_AGENTVIEW_POS = np.array([0.98, 0.0, 0.56])
_AGENTVIEW_TARGET = np.array([0.48, 0.0, 0.08])
_AGENTVIEW_FOVY = 45.0


@dataclass(frozen=True)
class RenderConfig:
    """Offscreen rendering options; they dominate render cost on CPU (see DESIGN.md).

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


def _fmt(values: np.ndarray | tuple[float, ...]) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def tabletop_mjcf(
    name: str,
    bodies: str,
    *,
    camera_pos: np.ndarray,
    camera_target: np.ndarray,
    camera_fovy: float,
    render: RenderConfig | None = None,
    robot: panda.PandaConfig | None = None,
    max_image_size: int = 640,
    userdata: int = 0,
    table_leg: bool = True,
) -> str:
    """Full MJCF of a tabletop scene: robot, table, lights, the agentview camera and `bodies`.

    `bodies` is the MJCF of the task's objects (world-frame bodies); `userdata` reserves that many
    mjData.userdata slots; `max_image_size` sizes the offscreen framebuffer (pixels). Every task
    scene is built here, so physics, lighting and render options are the same across tasks.
    """
    render = render or RenderConfig()
    robot_mjcf = panda.panda_mjcf(robot or panda.PandaConfig())
    buffer = max(640, int(max_image_size))
    agent_axes = look_at_xyaxes(camera_pos, camera_target)
    size = f'  <size nuserdata="{userdata}"/>\n' if userdata else ""
    leg = (
        f'    <geom name="table_leg" type="box" size="0.05 0.05 {(TABLE_HEIGHT - 0.04) / 2:.4g}"\n'
        f'          pos="0.3 0 {-(TABLE_HEIGHT + 0.04) / 2:.4g}" rgba="0.4 0.33 0.25 1" contype="0" conaffinity="0"/>\n'
        if table_leg
        else ""
    )
    return f"""<mujoco model="{name}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{PHYSICS_TIMESTEP}" integrator="implicitfast" cone="elliptic" impratio="10"/>
{size}  <visual>
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
{leg}    <camera name="{AGENTVIEW_CAMERA}" pos="{_fmt(camera_pos)}" xyaxes="{_fmt(agent_axes)}"
            fovy="{camera_fovy}"/>
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


def build_scene_xml(
    spec: TaskSpec,
    render: RenderConfig | None = None,
    robot: panda.PandaConfig | None = None,
    max_image_size: int = 640,
) -> str:
    """Full MJCF of the cube-on-plate scene. `max_image_size` sizes the offscreen framebuffer (pixels)."""
    half = spec.cube_size / 2.0
    bodies = f"""<body name="cube" pos="0.5 -0.1 {half:.6g}">
      <freejoint name="cube_joint"/>
      <geom name="cube" type="box" size="{half:.6g} {half:.6g} {half:.6g}" rgba="0.9 0.08 0.06 1" mass="0.09"
            friction="1.2 0.02 0.002" condim="4" class="world"/>
    </body>
    <body name="plate" pos="0.5 0.15 {PLATE_HALF_HEIGHT}">
      <freejoint name="plate_joint"/>
      <geom name="plate" type="cylinder" size="{spec.plate_radius:.6g} {PLATE_HALF_HEIGHT}"
            rgba="0.1 0.3 0.95 1" mass="0.6" friction="1 0.01 0.001" class="world"/>
      <geom name="plate_center" type="cylinder" size="{spec.plate_radius * 0.6:.6g} 0.0005"
            pos="0 0 {PLATE_HALF_HEIGHT:.6g}" rgba="0.45 0.6 1 1" contype="0" conaffinity="0" mass="0"/>
    </body>"""
    return tabletop_mjcf(
        spec.name,
        bodies,
        camera_pos=_AGENTVIEW_POS,
        camera_target=_AGENTVIEW_TARGET,
        camera_fovy=_AGENTVIEW_FOVY,
        render=render,
        robot=robot,
        max_image_size=max_image_size,
    )


@dataclass(frozen=True)
class SceneIndex:
    """Addresses into MjModel/MjData arrays for the objects the env, controller and expert use."""

    arm_qpos: np.ndarray  # (7,) qpos addresses of joints 1..7
    arm_dof: np.ndarray  # (7,) dof addresses of joints 1..7
    finger_qpos: np.ndarray  # (2,) qpos addresses of the finger slides
    arm_ctrl: np.ndarray  # (7,) actuator ids of the arm servos
    finger_ctrl: np.ndarray  # (2,) actuator ids of the finger servos
    grip_site: int
    cube_body: int
    cube_geom: int
    cube_qpos: int  # start of the cube's 7 free-joint qpos (xyz, quat)
    cube_dof: int  # start of the cube's 6 free-joint dofs (linear, angular)
    plate_body: int
    plate_geom: int
    plate_qpos: int
    plate_dof: int
    table_geom: int
    pad_geoms: np.ndarray  # (2,) finger pad geom ids

    @staticmethod
    def from_model(model: mujoco.MjModel) -> SceneIndex:
        def jid(name: str) -> int:
            return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)

        def aid(name: str) -> int:
            return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, name)

        def gid(name: str) -> int:
            return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)

        arm_j = [jid(n) for n in panda.JOINT_NAMES]
        finger_j = [jid(n) for n in panda.FINGER_JOINT_NAMES]
        return SceneIndex(
            arm_qpos=np.array([model.jnt_qposadr[j] for j in arm_j]),
            arm_dof=np.array([model.jnt_dofadr[j] for j in arm_j]),
            finger_qpos=np.array([model.jnt_qposadr[j] for j in finger_j]),
            arm_ctrl=np.array([aid(n) for n in panda.ARM_ACTUATOR_NAMES]),
            finger_ctrl=np.array([aid(n) for n in panda.FINGER_ACTUATOR_NAMES]),
            grip_site=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, panda.GRIP_SITE),
            cube_body=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "cube"),
            cube_geom=gid("cube"),
            cube_qpos=int(model.jnt_qposadr[jid("cube_joint")]),
            cube_dof=int(model.jnt_dofadr[jid("cube_joint")]),
            plate_body=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "plate"),
            plate_geom=gid("plate"),
            plate_qpos=int(model.jnt_qposadr[jid("plate_joint")]),
            plate_dof=int(model.jnt_dofadr[jid("plate_joint")]),
            table_geom=gid("table"),
            pad_geoms=np.array([gid(n) for n in panda.FINGER_PAD_GEOMS]),
        )
