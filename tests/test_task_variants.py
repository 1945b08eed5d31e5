"""Task variants: `TASK+oracle` keeps a memory task's cue lit all episode, from the task's own folder,
states and random streams, under its own name in datasets and the results store."""

import dataclasses
import sqlite3

import numpy as np
import pytest
from eval_fixtures import make_checkpoint

from robopolicy.cli import main
from robopolicy.data.collect import CollectConfig, collect
from robopolicy.data.rlds_reader import load_episodes
from robopolicy.errors import UserError
from robopolicy.sim import TabletopEnv, load_init_states
from robopolicy.tasks.object_library import CUE_RGBA
from robopolicy.tasks.spec import TaskSpecError, load_task_spec
from robopolicy.tasks.variants import oracle_task, split_variant, with_variant

TASK = "memory_press_lit_button"
ORACLE = "memory_press_lit_button+oracle"


def test_variant_names_split_and_join() -> None:
    assert split_variant(TASK) == (TASK, None)
    assert split_variant(ORACLE) == (TASK, "oracle")
    assert oracle_task(TASK) == ORACLE and oracle_task(ORACLE) == ORACLE
    assert with_variant(ORACLE, None) == ORACLE and with_variant(TASK, "oracle") == ORACLE
    for bad in (f"{TASK}+nope", "+oracle", f"{TASK}+oracle+oracle"):
        with pytest.raises(UserError, match="variant"):
            split_variant(bad)


def test_oracle_spec_is_the_task_spec_with_the_cue_kept_lit() -> None:
    base, oracle = load_task_spec(TASK), load_task_spec(ORACLE)
    assert not base.oracle and base.label == TASK
    assert oracle.oracle and oracle.label == ORACLE
    assert oracle.name == base.name and oracle.objects == base.objects and oracle.cue == base.cue
    with pytest.raises(TaskSpecError, match=r"cube_on_plate\+oracle.*no \[cue\]"):
        load_task_spec("cube_on_plate+oracle")


def _cue_lit(env: TabletopEnv) -> bool:
    geom = env.scene_task.handles[env.scene_task.cue_choice].main_geom
    return bool(np.allclose(env.model.geom_rgba[geom], CUE_RGBA))


@pytest.mark.parametrize(("task", "lit_at_the_end"), [(TASK, False), (ORACLE, True)])
def test_the_cue_is_lit_at_the_last_step_only_with_the_oracle(task: str, lit_at_the_end: bool) -> None:
    env = TabletopEnv(task=task, render=False)
    visible = env.spec.cue.visible_steps
    env.reset(init_state=load_init_states(task, env)[0])
    lit, truncated = [_cue_lit(env)], False
    while not truncated:
        *_, truncated, _ = env.step(np.zeros(7))
        lit.append(_cue_lit(env))
    assert env.num_steps == env.max_steps
    assert lit[:visible] == [True] * visible
    assert lit[visible:] == [lit_at_the_end] * (len(lit) - visible)


def test_oracle_runs_from_the_task_states_and_layouts() -> None:
    base, oracle = TabletopEnv(task=TASK, render=False), TabletopEnv(task=ORACLE, render=False)
    np.testing.assert_array_equal(load_init_states(TASK, base), load_init_states(ORACLE, oracle))
    np.testing.assert_array_equal(base.sample_init_state(7), oracle.sample_init_state(7))
    assert base.xml == oracle.xml  # the light is a colour set at run time: same model, same states


def test_oracle_demos_carry_the_variant_name_and_differ_only_by_the_light(tmp_path) -> None:
    episodes = []
    for task in (TASK, ORACLE):
        config = CollectConfig(task=task, num_episodes=1, image_size=32, cameras=("agentview",), workers=1)
        result = collect(dataclasses.replace(config, out=str(tmp_path / task)), progress=False)
        (episode,) = load_episodes(result.dataset_dir)
        episodes.append(episode)
    base, oracle = episodes
    assert (base.task, oracle.task) == (TASK, ORACLE) and base.instruction == oracle.instruction
    # Same seed, same layout and cue, same expert: the arms pair up demo for demo.
    np.testing.assert_array_equal(base.action, oracle.action)
    frames = [np.asarray(e.frames["agentview"]).astype(int) for e in episodes]
    visible = load_task_spec(TASK).cue.visible_steps
    np.testing.assert_array_equal(frames[0][:visible], frames[1][:visible])  # both lit
    assert np.abs(frames[0][visible] - frames[1][visible]).max() > 50  # only the oracle's still is


def test_eval_keeps_oracle_episodes_apart_in_the_results_store(tmp_path, capsys) -> None:
    run = make_checkpoint(tmp_path / "run")
    db = tmp_path / "e.db"
    args = ["eval", "--policy", str(run), "--tasks", TASK, ORACLE, "--init-states", "0:2"]
    args += ["--execution.max-steps", "2", "--db", str(db), "--video-episodes", "0"]
    assert main(args) == 0
    assert ORACLE in capsys.readouterr().out
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT task, init_state_id FROM episodes ORDER BY task, init_state_id").fetchall()
    assert rows == [(TASK, 0), (TASK, 1), (ORACLE, 0), (ORACLE, 1)]
