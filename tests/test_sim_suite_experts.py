"""Every suite task's scripted expert succeeds on fixed initial states (physics only)."""

import numpy as np
import pytest

from robopolicy.sim import TabletopEnv, load_init_states
from robopolicy.sim.expert import make_expert, run_expert_episode
from robopolicy.sim.spec_expert import SpecExpert
from robopolicy.tasks.scene_mjcf import USERDATA_CUE
from robopolicy.tasks.suites import list_suites, suite_tasks

ALL_TASKS = [t for s in list_suites() for t in suite_tasks(s)]


@pytest.mark.parametrize("task", ALL_TASKS)
def test_expert_succeeds_on_three_fixed_states(task: str) -> None:
    env = TabletopEnv(task=task, render=False)
    expert = make_expert(env)
    assert isinstance(expert, SpecExpert)
    states = load_init_states(task, env)
    for i in (0, 1, 2):
        rollout = run_expert_episode(env, init_state=states[i], expert=expert)
        assert rollout["success"], f"{task}: expert failed on fixed state {i}: {rollout['failure_reason']}"
        assert (abs(rollout["actions"]) <= 1.0).all()


# Memory tasks whose expert first acts on the cue more than (To−1)·stride = 14 steps after the light
# went out (PTP's To=8 frames, 2 steps apart): by then even a long context no longer shows the cue, and
# the motion before that step is the same whichever object was lit, so it does not give the choice away.
LATE_DECISION = (
    "memory_bowl_on_lit_peg_after_drawer",
    "memory_cube_on_lit_plate",
    "memory_cube_on_lit_plate_after_button",
    "memory_press_lit_button_after_switch",
)
LONG_CONTEXT_STEPS = (8 - 1) * 2


def _first_cue_dependent_action(env: TabletopEnv, state) -> int:
    """The first step at which the expert's action differs between the two cue choices of a layout."""
    actions = []
    for cue in (0, 1):
        env.reset(init_state=state)
        env.data.userdata[USERDATA_CUE] = cue
        rollout = run_expert_episode(env, init_state=env.get_state())
        assert rollout["success"], rollout["failure_reason"]
        actions.append(np.asarray(rollout["actions"]))
    n = min(len(a) for a in actions)
    differs = np.flatnonzero(np.any(actions[0][:n] != actions[1][:n], axis=1))
    assert differs.size, "the expert never acts on the cue"
    return int(differs[0])


@pytest.mark.parametrize("task", [*LATE_DECISION, "memory_press_lit_button"])
def test_late_decision_tasks_act_on_the_cue_after_it_left_a_long_context(task: str) -> None:
    assert task in ALL_TASKS
    env = TabletopEnv(task=task, render=False)
    for state in load_init_states(task, env)[:2]:
        after_cue = _first_cue_dependent_action(env, state) - env.spec.cue.visible_steps
        # memory_press_lit_button is the early-decision contrast: its reach goes to the lit button.
        assert (after_cue > LONG_CONTEXT_STEPS) is (task in LATE_DECISION), (task, after_cue)
