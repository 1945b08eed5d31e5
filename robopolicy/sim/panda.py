"""A Franka-Panda-like 7-DoF arm with a parallel two-finger gripper, written as MJCF by this module.

Kinematics follow the Panda's modified (Craig) Denavit-Hartenberg table: the frame of joint i sits in
the frame of joint i-1 at `Trans_x(a) · Rot_x(alpha) · Trans_z(d)`, and every joint turns about its
own z axis. The flange lies 0.107 m along joint 7's z axis; the hand is turned -45° about it as on the
real robot. Link shapes are primitive capsules; masses are the published link masses, rounded.

Everything is in metres, radians, kilograms. The arm has `gravcomp="1"` so the joint position servos
need no integral term to hold a pose.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from robopolicy.tasks.rotations import look_at_xyaxes, matrix_to_quat, rot_x, rot_z
from robopolicy.tasks.scene_mjcf import RobotMjcf

# Modified DH parameters of joints 1..7 (a_{i-1}, d_i, alpha_{i-1}).
DH_A: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0825, -0.0825, 0.0, 0.088)
DH_D: tuple[float, ...] = (0.333, 0.0, 0.316, 0.0, 0.384, 0.0, 0.0)
DH_ALPHA: tuple[float, ...] = (0.0, -np.pi / 2, np.pi / 2, np.pi / 2, -np.pi / 2, np.pi / 2, np.pi / 2)
FLANGE_D = 0.107

JOINT_LIMITS: tuple[tuple[float, float], ...] = (
    (-2.8973, 2.8973),
    (-1.7628, 1.7628),
    (-2.8973, 2.8973),
    (-3.0718, -0.0698),
    (-2.8973, 2.8973),
    (-0.0175, 3.7525),
    (-2.8973, 2.8973),
)
# A low "ready" posture: grip site at (0.39, 0, 0.355) m pointing straight down, fingers closing along
# world y, so the gripper starts above the workspace and inside the front camera view.
HOME_QPOS: tuple[float, ...] = (0.0, -0.5, 0.0, -2.5, 0.0, 2.0, 0.785)
FINGER_RANGE = (0.0, 0.04)

JOINT_NAMES: tuple[str, ...] = tuple(f"joint{i}" for i in range(1, 8))
FINGER_JOINT_NAMES: tuple[str, str] = ("finger_left", "finger_right")
ARM_ACTUATOR_NAMES: tuple[str, ...] = tuple(f"act_joint{i}" for i in range(1, 8))
FINGER_ACTUATOR_NAMES: tuple[str, str] = ("act_finger_left", "act_finger_right")
GRIP_SITE = "grip_site"
WRIST_CAMERA = "wrist"
FINGER_PAD_GEOMS: tuple[str, str] = ("pad_left", "pad_right")

_LINK_MASS = (4.97, 0.65, 3.23, 3.59, 1.23, 1.67, 0.74)
_LINK_RADIUS = (0.06, 0.06, 0.055, 0.055, 0.05, 0.045, 0.04)
# Servo gains per joint: stiff on the heavy shoulder joints, softer on the light wrist. kv is about
# critical damping for the joint-space inertia at the home posture (~0.8, 1.6, 0.25, 0.6, 0.12, 0.12,
# 0.11 kg m², armature included), so a target is reached in ~20 ms, well inside one 50 ms control step.
_KP = (4500.0, 4500.0, 3500.0, 3500.0, 2000.0, 1500.0, 800.0)
_KV = (120.0, 170.0, 60.0, 90.0, 30.0, 27.0, 19.0)
_FORCE_LIMIT = (87.0, 87.0, 87.0, 87.0, 40.0, 40.0, 40.0)

# Finger geometry (hand frame): fingers start 58.4 mm below the flange as on the real hand.
_FINGER_BASE_Z = 0.0584
_PAD_HALF = (0.011, 0.007, 0.027)
# Centre of the fingertip pads: a grasped object sits here.
GRIP_SITE_Z = 0.1034


@dataclass(frozen=True)
class PandaConfig:
    """Options for the generated robot.

    finger_kp: gripper servo stiffness (N/m); with target 0 and a 4.5 cm cube this squeezes ~7 N a finger.
    finger_force: gripper force limit per finger (N).
    finger_friction: sliding friction of the finger pads (MuJoCo takes the max over a contact pair).
    """

    finger_kp: float = 300.0
    finger_force: float = 40.0
    finger_friction: float = 2.0

    def __post_init__(self) -> None:
        for name in ("finger_kp", "finger_force", "finger_friction"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"PandaConfig.{name} must be positive, got {value}")


def _fmt(values: np.ndarray | tuple[float, ...] | list[float]) -> str:
    # Fixed formatting keeps the generated XML (and so its hash) stable across runs.
    return " ".join(f"{float(v):.6g}" for v in values)


def _dh_offset(i: int) -> tuple[np.ndarray, np.ndarray]:
    """Position (3,) and rotation (3, 3) of joint frame i+1 in joint frame i (i = 0 is the base)."""
    a, d, alpha = DH_A[i], DH_D[i], DH_ALPHA[i]
    rot = rot_x(alpha)
    return np.array([a, 0.0, 0.0]) + rot @ np.array([0.0, 0.0, d]), rot


def _link_geoms(i: int, next_offset: np.ndarray, next_a: float, radius: float, mass: float) -> str:
    """Capsules from joint frame i to the next frame, drawn as an L along a then along d."""
    elbow = np.array([next_a, 0.0, 0.0])
    segments = [(np.zeros(3), elbow), (elbow, next_offset)]
    segments = [(p, q) for p, q in segments if np.linalg.norm(q - p) > 1e-6]
    housing = (
        f'<geom name="link{i}_housing" type="cylinder" size="{radius:.4g} {radius:.4g}" '
        f'class="arm" mass="{mass / (len(segments) + 1):.4g}"/>'
    )
    capsules = [
        f'<geom name="link{i}_seg{k}" type="capsule" fromto="{_fmt(p)} {_fmt(q)}" size="{radius * 0.85:.4g}" '
        f'class="arm" mass="{mass / (len(segments) + 1):.4g}"/>'
        for k, (p, q) in enumerate(segments)
    ]
    return "\n".join([housing, *capsules])


def _hand_body(config: PandaConfig) -> str:
    hand_quat = matrix_to_quat(rot_z(-np.pi / 4))
    px, py, pz = _PAD_HALF
    # Camera sits behind the fingers (-x of the hand, towards the robot base at the home posture) and
    # looks down past them; image-up is the hand's +x, so the fingertips show in the lower half.
    cam_pos = np.array([-0.07, 0.0, 0.03])
    cam_axes = look_at_xyaxes(cam_pos, np.array([0.04, 0.0, 0.25]), up=np.array([1.0, 0.0, 0.0]))
    fingers = []
    for side, sign in (("left", 1.0), ("right", -1.0)):
        fingers.append(
            f"""<body name="finger_{side}_body" pos="0 0 {_FINGER_BASE_Z}">
  <inertial pos="0 {sign * py:.4g} {pz:.4g}" mass="0.05" diaginertia="2e-5 2e-5 1e-5"/>
  <joint name="finger_{side}" type="slide" axis="0 {sign:.0f} 0" range="{_fmt(FINGER_RANGE)}"
         damping="5" armature="0.01"/>
  <geom name="pad_{side}" type="box" size="{px} {py} {pz}" pos="0 {sign * py:.4g} {pz:.4g}"
        class="finger" friction="{config.finger_friction:.4g} 0.02 0.002"/>
</body>"""
        )
    return f"""<body name="hand" pos="0 0 {FLANGE_D}" quat="{_fmt(hand_quat)}" gravcomp="1">
  <geom name="hand_mount" type="cylinder" size="0.04 0.01" pos="0 0 0.01" class="arm" mass="0.2"/>
  <geom name="palm" type="box" size="0.025 0.095 0.022" pos="0 0 0.035" class="arm" mass="0.5"/>
  <site name="{GRIP_SITE}" pos="0 0 {GRIP_SITE_Z}" size="0.005" rgba="0 1 0 0"/>
  <camera name="{WRIST_CAMERA}" pos="{_fmt(cam_pos)}" xyaxes="{_fmt(cam_axes)}" fovy="75"/>
  {fingers[0]}
  {fingers[1]}
</body>"""


def _defaults() -> str:
    """MJCF `<default>` classes used by the robot: `arm` (links) and `finger` (pads).

    Robot geoms use contype 2 / conaffinity 1: they touch the world (contype 1) but not each other,
    which avoids spurious self-contacts between the simplified link capsules.
    """
    return """<default class="arm">
  <geom contype="2" conaffinity="1" rgba="0.92 0.92 0.94 1" group="1"/>
</default>
<default class="finger">
  <geom contype="2" conaffinity="1" rgba="0.25 0.25 0.28 1" condim="4" solref="0.01 1" solimp="0.95 0.99 0.001"
        group="1"/>
</default>"""


def panda_mjcf(config: PandaConfig, base_pos: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> RobotMjcf:
    """Robot defaults, body tree (with its base at `base_pos`, metres), actuators and contact exclusions."""
    base = (
        '<geom name="link0_base" type="cylinder" size="0.09 0.03" pos="0 0 0.03" class="arm" mass="2"/>\n'
        f'<geom name="link0_column" type="capsule" fromto="0 0 0.05 0 0 {DH_D[0] - 0.06}" size="0.065" '
        'class="arm" mass="2"/>'
    )
    # Build the chain from the hand outwards so each body can be nested in its parent.
    inner = _hand_body(config)
    for i in range(7, 0, -1):
        lo, hi = JOINT_LIMITS[i - 1]
        if i < 7:
            next_offset, _ = _dh_offset(i)
            next_a = DH_A[i]
        else:
            next_offset, next_a = np.array([0.0, 0.0, FLANGE_D]), 0.0
        pos, rot = _dh_offset(i - 1)
        geoms = _link_geoms(i, next_offset, next_a, _LINK_RADIUS[i - 1], _LINK_MASS[i - 1])
        inner = f"""<body name="link{i}" pos="{_fmt(pos)}" quat="{_fmt(matrix_to_quat(rot))}" gravcomp="1">
<joint name="joint{i}" axis="0 0 1" range="{lo} {hi}" damping="1" armature="0.1"/>
{geoms}
{inner}
</body>"""
    body = f"""<body name="link0" pos="{_fmt(base_pos)}">
{base}
{inner}
</body>"""
    arm_acts = "\n".join(
        f'<position name="{ARM_ACTUATOR_NAMES[i]}" joint="{JOINT_NAMES[i]}" kp="{_KP[i]:.6g}" kv="{_KV[i]:.6g}" '
        f'ctrlrange="{JOINT_LIMITS[i][0]} {JOINT_LIMITS[i][1]}" forcerange="{-_FORCE_LIMIT[i]} {_FORCE_LIMIT[i]}"/>'
        for i in range(7)
    )
    finger_acts = "\n".join(
        f'<position name="{act}" joint="{joint}" kp="{config.finger_kp:.6g}" ctrlrange="{_fmt(FINGER_RANGE)}" '
        f'forcerange="{-config.finger_force:.6g} {config.finger_force:.6g}"/>'
        for act, joint in zip(FINGER_ACTUATOR_NAMES, FINGER_JOINT_NAMES, strict=True)
    )
    excludes = '<exclude body1="link0" body2="link1"/>'
    return RobotMjcf(
        defaults=_defaults(), body=body, actuators=f"{arm_acts}\n{finger_acts}", contact_excludes=excludes
    )


@dataclass(frozen=True)
class RobotIndex:
    """Addresses of the robot in a compiled scene: what the env, controller and experts read and write."""

    arm_qpos: np.ndarray  # (7,) qpos addresses of joints 1..7
    arm_dof: np.ndarray  # (7,) dof addresses of joints 1..7
    finger_qpos: np.ndarray  # (2,) qpos addresses of the finger slides
    arm_ctrl: np.ndarray  # (7,) actuator ids of the arm servos
    finger_ctrl: np.ndarray  # (2,) actuator ids of the finger servos
    grip_site: int
    pad_geoms: np.ndarray  # (2,) finger pad geom ids

    @staticmethod
    def from_model(model: mujoco.MjModel) -> RobotIndex:
        def jid(name: str) -> int:
            return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name)

        def aid(name: str) -> int:
            return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, name)

        arm_j = [jid(n) for n in JOINT_NAMES]
        finger_j = [jid(n) for n in FINGER_JOINT_NAMES]
        return RobotIndex(
            arm_qpos=np.array([model.jnt_qposadr[j] for j in arm_j]),
            arm_dof=np.array([model.jnt_dofadr[j] for j in arm_j]),
            finger_qpos=np.array([model.jnt_qposadr[j] for j in finger_j]),
            arm_ctrl=np.array([aid(n) for n in ARM_ACTUATOR_NAMES]),
            finger_ctrl=np.array([aid(n) for n in FINGER_ACTUATOR_NAMES]),
            grip_site=mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, GRIP_SITE),
            pad_geoms=np.array(
                [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n) for n in FINGER_PAD_GEOMS]
            ),
        )
