"""Every suite task's scripted expert succeeds on fixed initial states (physics only)."""

import pytest

from robopolicy.sim import TabletopEnv, load_init_states
from robopolicy.sim.expert import make_expert, run_expert_episode
from robopolicy.sim.spec_expert import SpecExpert
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
