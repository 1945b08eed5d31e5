"""Runtime of a task: addresses of its objects, layout sampling, cue light, goal checks.

The env owns MuJoCo's model and data; this class reads and writes them for one `TaskSpec`. Goal terms
are evaluated every step on the final state of the step; success is their conjunction (a `once` term
counts once it has held at any step of the episode). Memory predicates compare with the episode's
start, which `start()` records from the restored initial state, so they are reproducible from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
from jaxtyping import Float

from robopolicy.sim import predicates
from robopolicy.tasks.object_library import CUE_RGBA, DRAWER_INNER_X, Role
from robopolicy.tasks.rotations import quat_to_yaw, yaw_to_quat
from robopolicy.tasks.scene_mjcf import USERDATA_CUE
from robopolicy.tasks.spec import CUE, NOT_CUE, GoalTerm, ObjectSpec, TaskSpec

_LAYOUT_MARGIN = 0.01  # m of free space kept between the clearance radii of any two objects
_MAX_LAYOUT_TRIES = 1000


@dataclass(frozen=True)
class ObjectHandle:
    """MuJoCo addresses of one object. -1 where not applicable."""

    spec: ObjectSpec
    body: int
    main_geom: int  # the geom that carries the object's colour (and the cue light)
    qpos: int  # graspable: start of its free-joint qpos
    dof: int  # graspable: start of its free-joint dofs
    mocap: int  # fixture: mocap index
    joint_qpos: int  # articulated: qpos address of its joint
    part_body: int  # articulated: the moving part (drawer, cap, knob)


class SceneTask:
    """Layout sampling and goal evaluation of one task on a given model.

    pad_geoms: (2,) geom ids of the robot's finger pads, which tell holding from resting.
    """

    def __init__(self, spec: TaskSpec, model: mujoco.MjModel, pad_geoms: np.ndarray) -> None:
        self._spec = spec
        self._model = model
        self.handles: dict[str, ObjectHandle] = {o.name: self._handle(o) for o in spec.objects}
        # geom id -> index of the object it belongs to (-1: robot, table, ...), for contact lookups.
        self._geom_owner = np.full(model.ngeom, -1)
        names = list(self.handles)
        for k, name in enumerate(names):
            h = self.handles[name]
            bodies = {h.body} | ({h.part_body} if h.part_body >= 0 else set())
            for g in range(model.ngeom):
                if int(model.geom_bodyid[g]) in bodies:
                    self._geom_owner[g] = k
        self._object_index = {name: k for k, name in enumerate(names)}
        self._base_rgba = model.geom_rgba.copy()
        self._pad_slot = {int(g): k for k, g in enumerate(pad_geoms)}  # pad geom id -> pad index
        self._start_xy: dict[str, np.ndarray] = {}
        self._cue_choice = 0
        self._latched: dict[str, bool] = {}
        self._grasped: set[str] = set()  # objects held between both finger pads at some step so far

    def object_poses(self, data: mujoco.MjData) -> Float[np.ndarray, " o"]:
        """Every object's world pose, in the task spec's object order: position (x, y, z, metres) and
        orientation (quaternion w, x, y, z) of its body, then of its moving part if it is articulated;
        float32 [7 · bodies]. What `robopolicy collect` stores as `observation/object_state`."""
        bodies = [b for h in self.handles.values() for b in (h.body, h.part_body) if b >= 0]
        return np.concatenate([np.concatenate([data.xpos[b], data.xquat[b]]) for b in bodies]).astype(
            np.float32
        )

    def _handle(self, obj: ObjectSpec) -> ObjectHandle:
        m = self._model
        body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, obj.name)
        # Round graspables collide through an invisible box and show their colour on a "shell".
        shell = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, f"{obj.name}_shell")
        geom = shell if shell >= 0 else mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, obj.name)
        qpos = dof = joint_qpos = part = -1
        if obj.kind.role is Role.GRASPABLE:
            j = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, f"{obj.name}_free")
            qpos, dof = int(m.jnt_qposadr[j]), int(m.jnt_dofadr[j])
        if obj.kind.articulated:
            j = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, f"{obj.name}_joint")
            joint_qpos = int(m.jnt_qposadr[j])
            part = int(m.jnt_bodyid[j])
        return ObjectHandle(obj, body, geom, qpos, dof, int(m.body_mocapid[body]), joint_qpos, part)

    @property
    def spec(self) -> TaskSpec:
        return self._spec

    @property
    def cue_choice(self) -> str | None:
        """Name of the lit cue object of the current episode (None without a cue)."""
        return self._spec.cue.choices[self._cue_choice] if self._spec.cue else None

    # ----- layout -----
    def sample(self, data: mujoco.MjData, rng: np.random.Generator) -> None:
        """Write a random layout, articulated-joint openings and cue choice into `data` (qpos, mocap)."""
        objects = self._spec.objects
        for _ in range(_MAX_LAYOUT_TRIES):
            xy = np.array([[_draw(rng, o.x), _draw(rng, o.y)] for o in objects])
            if _separated(xy, np.array([o.kind.radius for o in objects]), self._spec.min_separation):
                break
        else:
            raise RuntimeError(
                f"task '{self._spec.name}': no layout with the objects {_LAYOUT_MARGIN} m apart "
                f"(min_separation {self._spec.min_separation} m) found in {_MAX_LAYOUT_TRIES} tries; "
                "move the regions apart"
            )
        for obj, (x, y) in zip(objects, xy, strict=True):
            h = self.handles[obj.name]
            quat = yaw_to_quat(float(rng.uniform(*obj.yaw)))
            if h.qpos >= 0:
                data.qpos[h.qpos : h.qpos + 3] = (x, y, obj.kind.half_height)
                data.qpos[h.qpos + 3 : h.qpos + 7] = quat
            else:
                data.mocap_pos[h.mocap] = (x, y, 0.0)
                data.mocap_quat[h.mocap] = quat
            if h.joint_qpos >= 0:
                data.qpos[h.joint_qpos] = obj.kind.travel * float(rng.uniform(*obj.joint))
        if self._spec.cue is not None:
            data.userdata[USERDATA_CUE] = float(rng.integers(len(self._spec.cue.choices)))

    # ----- episode -----
    def start(self, data: mujoco.MjData) -> None:
        """Record the episode's start (object positions, cue) from the just-restored initial state."""
        self._start_xy = {n: data.xpos[h.body][:2].copy() for n, h in self.handles.items()}
        self._cue_choice = round(float(data.userdata[USERDATA_CUE])) if self._spec.cue else 0
        self._latched = {}
        self._grasped = set()
        self.show_cue(0)

    def show_cue(self, step: int) -> None:
        """Light the cue object while `step` < visible_steps, or at every step for the oracle variant
        (a model colour: no effect on physics)."""
        self._model.geom_rgba[:] = self._base_rgba
        cue = self._spec.cue
        if cue is not None and (self._spec.oracle or step < cue.visible_steps):
            self._model.geom_rgba[self.handles[cue.choices[self._cue_choice]].main_geom] = CUE_RGBA

    def resolve(self, arg: str) -> str:
        """Object name of a goal argument ($cue and $not_cue resolve to this episode's choice)."""
        cue = self._spec.cue
        if arg == CUE and cue is not None:
            return cue.choices[self._cue_choice]
        if arg == NOT_CUE and cue is not None:
            return cue.choices[1 - self._cue_choice]
        return arg

    def start_xy(self, name: str) -> np.ndarray:
        return self._start_xy[name]

    def farther_support(self, obj: str, a: str, b: str, data: mujoco.MjData) -> str:
        """Which of supports a, b lies farther from where `obj` started."""
        i = predicates.farther_of(
            self._start_xy[obj], data.xpos[self.handles[a].body][:2], data.xpos[self.handles[b].body][:2]
        )
        return (a, b)[i]

    # ----- predicates -----
    def contacts(self, data: mujoco.MjData) -> tuple[np.ndarray, set[tuple[int, int]]]:
        """(number of finger pads touching each object (n_objects,), set of touching object index pairs)."""
        touched = np.zeros((len(self.handles), len(self._pad_slot)), dtype=bool)
        pairs: set[tuple[int, int]] = set()
        for c in range(data.ncon):
            g1, g2 = int(data.contact.geom[c, 0]), int(data.contact.geom[c, 1])
            o1, o2 = int(self._geom_owner[g1]), int(self._geom_owner[g2])
            if o1 >= 0 and g2 in self._pad_slot:
                touched[o1, self._pad_slot[g2]] = True
            if o2 >= 0 and g1 in self._pad_slot:
                touched[o2, self._pad_slot[g1]] = True
            if o1 >= 0 and o2 >= 0 and o1 != o2:
                pairs.add((min(o1, o2), max(o1, o2)))
        return touched.sum(axis=1), pairs

    def fraction(self, data: mujoco.MjData, name: str) -> float:
        """Opening of an articulated object as a fraction of its travel."""
        h = self.handles[name]
        return predicates.joint_fraction(float(data.qpos[h.joint_qpos]), h.spec.kind.travel)

    def _speed(self, data: mujoco.MjData, name: str) -> float:
        h = self.handles[name]
        return float(np.linalg.norm(data.qvel[h.dof : h.dof + 3]))

    def _on(self, data: mujoco.MjData, obj: str, support: str, pairs: set[tuple[int, int]]) -> bool:
        o, s = self.handles[obj], self.handles[support]
        kind = s.spec.kind
        pos = data.xpos[o.body]
        local = predicates.to_local_xy(pos, data.xpos[s.body], quat_to_yaw(data.xquat[s.body]))
        io, is_ = self._object_index[obj], self._object_index[support]
        return predicates.on_surface(
            pos,
            o.spec.kind.half_height,
            local,
            float(data.xpos[s.body][2]) + kind.top,
            kind.footprint,
            kind.round_footprint,
            obj_speed=self._speed(data, obj),
            in_contact=(min(io, is_), max(io, is_)) in pairs,
        )

    def _in(self, data: mujoco.MjData, obj: str, container: str) -> bool:
        o, c = self.handles[obj], self.handles[container]
        kind = c.spec.kind
        frame = c.part_body if kind.role is Role.DRAWER else c.body
        origin = data.xpos[frame].copy()
        yaw = quat_to_yaw(data.xquat[frame])
        if kind.role is Role.DRAWER:
            # The drawer's inner footprint is centred off the drawer body's origin.
            offset = float(np.mean(DRAWER_INNER_X))
            origin[:2] += offset * np.array([np.cos(yaw), np.sin(yaw)])
        pos = data.xpos[o.body]
        local = predicates.to_local_xy(pos, origin, yaw)
        base_z = float(data.xpos[c.body][2])
        return predicates.inside(
            pos,
            local,
            base_z + kind.floor,
            base_z + kind.wall_top,
            kind.footprint,
            obj_speed=self._speed(data, obj),
        )

    def term_value(
        self, data: mujoco.MjData, term: GoalTerm, pads: np.ndarray, pairs: set[tuple[int, int]]
    ) -> bool:
        """Current value of one goal term (ignoring `once`)."""
        args = [self.resolve(a) for a in term.args]
        p = term.predicate
        if p in ("On", "In", "OnFarther", "AtStart") and pads[self._object_index[args[0]]] > 0:
            return False  # an object still held has not been put anywhere
        if p == "On":
            return self._on(data, args[0], args[1], pairs)
        if p == "In":
            return self._in(data, args[0], args[1])
        if p == "OnFarther":
            return self._on(data, args[0], self.farther_support(args[0], args[1], args[2], data), pairs)
        if p == "AtStart":
            o = self.handles[args[0]]
            return predicates.at_start(
                data.xpos[o.body],
                o.spec.kind.half_height,
                self._start_xy[args[0]],
                obj_speed=self._speed(data, args[0]),
            )
        if p == "Lifted":
            return predicates.lifted(
                data.xpos[self.handles[args[0]].body], self.handles[args[0]].spec.kind.half_height
            )
        fraction = self.fraction(data, args[0])
        if p == "Open":
            return fraction >= predicates.OPEN_FRACTION
        if p == "Close":
            return fraction <= predicates.CLOSED_FRACTION
        if p == "TurnOn":
            return fraction >= predicates.TURNED_ON_FRACTION
        if p == "TurnOff":
            return fraction <= predicates.TURNED_OFF_FRACTION
        raise ValueError(f"unknown predicate {p!r}")

    def evaluate(self, data: mujoco.MjData) -> tuple[dict[str, bool], bool, str | None]:
        """(term values keyed by their description, success, failure reason or None).

        The reason names the first unmet term and, when that term moves a graspable object, what became
        of the object: "goal On(cube, plate) not met: cube never grasped" (or "still held", or "let go
        elsewhere"). Call once per control step: `once` terms and grasps latch here.
        """
        pads, pairs = self.contacts(data)
        self._grasped.update(name for name, k in self._object_index.items() if pads[k] == 2)
        values: dict[str, bool] = {}
        reason = None
        for term in self._spec.goal:
            key = term.describe()
            value = self.term_value(data, term, pads, pairs)
            if term.once:
                value = self._latched.get(key, False) or value
                self._latched[key] = value
            values[key] = value
            if not value and reason is None:
                resolved = [self.resolve(a) for a in term.args]
                reason = f"goal {key} not met{self._what_became_of(resolved[0], pads)}" + (
                    f" (resolved: {', '.join(resolved)})" if resolved != list(term.args) else ""
                )
        return values, reason is None, reason

    def _what_became_of(self, name: str, pads: np.ndarray) -> str:
        """What became of a graspable object, as a reason's suffix (never grasped, still held, let go
        elsewhere); empty for any other object."""
        if self.handles[name].spec.kind.role is not Role.GRASPABLE:
            return ""
        if name not in self._grasped:
            return f": {name} never grasped"
        return f": {name} still held" if pads[self._object_index[name]] > 0 else f": {name} let go elsewhere"


def _draw(rng: np.random.Generator, intervals: tuple[tuple[float, float], ...]) -> float:
    lo, hi = intervals[int(rng.integers(len(intervals)))] if len(intervals) > 1 else intervals[0]
    return float(rng.uniform(lo, hi))


def _separated(xy: np.ndarray, radius: np.ndarray, min_separation: float) -> bool:
    """Whether every two of the (n, 2) centres are their clearance radii (n,) apart, and min_separation."""
    dist = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=-1)
    need = np.maximum(radius[:, None] + radius[None, :] + _LAYOUT_MARGIN, min_separation)
    np.fill_diagonal(dist, np.inf)
    return bool(np.all(dist >= need))
