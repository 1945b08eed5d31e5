"""The vector sweep backend: one policy process drives N env worker processes (`make_vector`).

Work units of one run (checkpoint × settings) are pooled; the policy is loaded and compiled once in
this process, and every env step makes at most one batched inference call for all envs that need a
new chunk (`robopolicy.eval.episode_loop`). Each episode is claimed in the store when it starts and
written when it ends, so a killed run loses only the N episodes in flight and a rerun takes them over.
"""

from __future__ import annotations

from collections.abc import Callable

from robopolicy.eval.episode_loop import MakeEnvs
from robopolicy.eval.results_store import ResultsStore
from robopolicy.eval.work_units import StoreSink, WorkUnit, run_units


def run_vectorized(
    units: list[WorkUnit],
    db: str,
    num_envs: int,
    report: Callable[[str], None],
    make_envs: MakeEnvs | None = None,
) -> None:
    """Run units with one policy process and `num_envs` env workers; runs (policy × settings) in turn.

    `make_envs(tasks, **env_kwargs)` builds the vector env of a wave (default `robopolicy.sim.make_vector`).
    """
    if make_envs is None:
        from robopolicy.sim import make_vector

        make_envs = make_vector
    with ResultsStore(db) as store:
        run_units(units, StoreSink(store), num_envs, make_envs, report)
