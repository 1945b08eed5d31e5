"""Composed task suites: specs, suites listing, constructed-state predicates, cue, determinism, sim errors."""

import mujoco
import numpy as np
import pytest

from robopolicy.sim import TabletopEnv
from robopolicy.sim.init_states import load_init_states
from robopolicy.tasks.object_library import CUE_RGBA, OBJECT_TYPES, Role
from robopolicy.tasks.spec import TaskSpec, load_task_spec
from robopolicy.tasks.suites import UnknownSuiteError, list_suites, suite_tasks

ALL_TASKS = [t for s in list_suites() for t in suite_tasks(s)]


def test_suites_have_their_sizes() -> None:
    sizes = {s: len(suite_tasks(s)) for s in list_suites()}
    assert sizes == {
        "libero_style_spatial": 10,
        "libero_style_object": 10,
        "libero_style_goal": 10,
        "libero_style_long": 10,
        "libero_style_memory": sizes["libero_style_memory"],
    }
    assert sizes["libero_style_memory"] >= 4
    with pytest.raises(UnknownSuiteError, match="libero_style_spatial"):
        suite_tasks("libero_style_nope")


def test_object_library_has_ten_types_and_distinct_colours_per_scene() -> None:
    assert len(OBJECT_TYPES) >= 10
    for task in ALL_TASKS:
        spec = load_task_spec(task)
        targets = [o for o in spec.objects if o.kind.role is Role.GRASPABLE]
        # Same type and colour only where the suite wants look-alikes (spatial bowls).
        looks = [(o.type, o.color) for o in targets]
        if not task.startswith("spatial_"):
            assert len(set(looks)) == len(looks), task


@pytest.mark.parametrize("task", ALL_TASKS)
def test_every_spec_loads_with_its_init_states(task: str) -> None:
    spec = load_task_spec(task)
    assert isinstance(spec, TaskSpec) and spec.name == task and spec.instruction
    env = TabletopEnv(task=task, render=False)
    states = load_init_states(task, env)
    assert states.shape == (50, env.state_size)
    assert len({s.tobytes() for s in states}) == 50


def _place(env: TabletopEnv, name: str, xyz: tuple[float, float, float]) -> None:
    h = env.scene_task.handles[name]
    env.data.qpos[h.qpos : h.qpos + 3] = xyz
    env.data.qpos[h.qpos + 3 : h.qpos + 7] = (1, 0, 0, 0)
    env.data.qvel[h.dof : h.dof + 6] = 0
    mujoco.mj_forward(env.model, env.data)


def test_predicates_on_constructed_states() -> None:
    env = TabletopEnv(task="goal_cube_on_plate", render=False)
    env.reset(seed=0)
    task = env.scene_task
    plate = env.data.xpos[task.handles["plate"].body]
    key = "On(cube, plate)"
    assert not env.evaluate()[key]
    _place(env, "cube", (plate[0] + 0.01, plate[1], 0.012 + 0.0225))
    assert env.evaluate()[key]
    _place(env, "cube", (plate[0] + 0.09, plate[1], 0.012 + 0.0225))  # beside the plate's rim
    assert not env.evaluate()[key]
    _place(env, "cube", (plate[0], plate[1], 0.012 + 0.0225 + 0.05))  # hovering above it
    assert not env.evaluate()[key]


def test_drawer_switch_and_in_predicates_on_constructed_states() -> None:
    env = TabletopEnv(task="long_open_drawer_cube_in", render=False)
    env.reset(seed=0)
    task = env.scene_task
    cab = task.handles["cabinet"]
    values = env.evaluate()
    assert not values["Open(cabinet)"] and not values["In(cube, cabinet)"]
    env.data.qpos[cab.joint_qpos] = 0.12
    mujoco.mj_forward(env.model, env.data)
    drawer = env.data.xpos[cab.part_body]
    _place(env, "cube", (drawer[0] - 0.05, drawer[1], 0.012 + 0.0225 + 0.001))
    values = env.evaluate()
    assert values["Open(cabinet)"] and values["In(cube, cabinet)"]
    env.data.qpos[cab.joint_qpos] = 0.0
    mujoco.mj_forward(env.model, env.data)
    assert not env.evaluate()["Open(cabinet)"]

    switch = TabletopEnv(task="goal_turn_off_switch", render=False)
    switch.reset(seed=0)
    assert not switch.evaluate()["TurnOff(switch)"]
    switch.data.qpos[switch.scene_task.handles["switch"].joint_qpos] = 0.0
    mujoco.mj_forward(switch.model, switch.data)
    assert switch.evaluate()["TurnOff(switch)"]


def test_door_predicates_on_constructed_states() -> None:
    env = TabletopEnv(task="goal_open_door", render=False)
    env.reset(seed=0)
    door = env.scene_task.handles["cupboard"]
    assert not env.evaluate()["Open(cupboard)"]
    for angle, is_open in ((0.5, False), (1.2, True)):
        env.data.qpos[door.joint_qpos] = angle
        mujoco.mj_forward(env.model, env.data)
        assert env.evaluate()["Open(cupboard)"] is is_open


def test_success_is_checked_every_step_and_failure_reason_names_the_goal() -> None:
    env = TabletopEnv(task="goal_open_drawer", render=False)
    _, info = env.reset(seed=1)
    assert not info["success"] and info["failure_reason"] == "goal Open(cabinet) not met"
    env.data.qpos[env.scene_task.handles["cabinet"].joint_qpos] = 0.12
    _, reward, terminated, _, info = env.step(np.zeros(7))
    assert info["success"] and terminated and reward == 1.0 and info["failure_reason"] is None


def test_memory_cue_disappears() -> None:
    env = TabletopEnv(task="memory_press_lit_button", render=False)
    lit = set()
    for state in load_init_states("memory_press_lit_button", env)[:8]:
        env.reset(init_state=state)
        cue = env.scene_task.cue_choice
        geom = env.scene_task.handles[cue].main_geom
        np.testing.assert_allclose(env.model.geom_rgba[geom], CUE_RGBA)
        for _ in range(env.spec.cue.visible_steps):
            env.step(np.zeros(7))
        assert not np.allclose(env.model.geom_rgba[geom], CUE_RGBA)
        lit.add(cue)
    assert lit == {"button_left", "button_right"}  # both choices occur


def test_memory_start_predicates() -> None:
    env = TabletopEnv(task="memory_cube_back_to_start", render=False)
    _, info = env.reset(seed=2)
    assert info["AtStart(cube)"] and not info["OnceOn(cube, plate)"] and not info["success"]


def test_composed_env_is_deterministic() -> None:
    env = TabletopEnv(task="memory_cube_on_lit_plate", render=False)
    state = load_init_states("memory_cube_on_lit_plate", env)[3]
    actions = np.random.default_rng(0).uniform(-1, 1, size=(12, 7))
    finals = []
    for _ in range(2):
        env.reset(init_state=state)
        for a in actions:
            env.step(a)
        finals.append(env.get_state())
    np.testing.assert_array_equal(finals[0], finals[1])
    env.reset(init_state=state)
    np.testing.assert_array_equal(env.get_state(), state)


def test_instability_ends_episode_with_sim_error() -> None:
    env = TabletopEnv(task="goal_cube_on_plate", render=False)
    env.reset(seed=0)
    h = env.scene_task.handles["cube"]
    env.data.qvel[h.dof : h.dof + 3] = 1e9
    _, _, terminated, truncated, info = env.step(np.zeros(7))
    assert info["sim_error"] and truncated and not terminated and not info["success"]
    assert info["failure_reason"] == info["sim_error"]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(7))
