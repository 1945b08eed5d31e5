"""Process bodies for the multi-process store tests; they import little so that spawning is quick."""

from typing import Any


def write_episodes(db: str, worker: int, count: int) -> None:
    """Process body for the concurrent-writer test: register the shared run, then store `count` episodes."""
    from robopolicy.eval.results_store import EpisodeKey, EpisodeRecord, ResultsStore, Worker

    me = Worker.this_process()
    with ResultsStore(db) as store:
        run_id = store.register_run("policy", 1, {"mode": "chunk"}, "hash")
        for i in range(count):
            key = EpisodeKey("cube_on_plate", worker * 1000 + i, 0)
            assert store.claim(run_id, key, "", me)
            store.record(run_id, EpisodeRecord(key.task, key.init_state_id, 0, i % 2 == 0, 10, None, 0.1), me)


def evaluate(db: str, run_dir: str, init_states: str, max_steps: int, log: str, start: Any) -> None:
    """Process body for the concurrent-evaluator test: a local sweep in this process, started when
    every evaluator is ready (`start`, a barrier), whose episodes each take a little time (10 ms per
    policy step) and append "pid seed" to `log` as they start."""
    import os
    import time

    from robopolicy.eval.action_selector import ActionSelector
    from robopolicy.eval.execution import ExecutionSettings
    from robopolicy.eval.sweep import run_sweep
    from robopolicy.eval.sweep_config import SweepConfig

    reset = ActionSelector.reset

    def logged_reset(self, slot, seed=None, instruction=None):
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {seed}\n")
        return reset(self, slot, seed, instruction)

    act = ActionSelector.act

    def slow_act(self, obs, active):
        time.sleep(0.01)
        return act(self, obs, active)

    ActionSelector.reset = logged_reset  # type: ignore[method-assign]
    ActionSelector.act = slow_act  # type: ignore[method-assign]
    config = SweepConfig(
        db=db,
        checkpoints=(run_dir,),
        tasks=("cube_on_plate",),
        init_states=init_states,
        workers=0,
        settings=(ExecutionSettings(max_steps=max_steps),),
    )
    start.wait()
    run_sweep(config, lambda msg: None)
