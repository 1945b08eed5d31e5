"""`robopolicy eval --policy … --suite/--tasks …`: a one-checkpoint sweep into a results database,
printed as a per-task table with 95 % intervals; and the text output of `sweep` and `compare`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from robopolicy.errors import UserError
from robopolicy.eval.comparison import EvaluatedRun, find_run, load_runs, paired, summarize
from robopolicy.eval.eval_config import EvalConfig
from robopolicy.eval.remote_policy import connect_remote, is_remote
from robopolicy.eval.sweep import run_sweep
from robopolicy.eval.sweep_config import SweepConfig

REMOTE_DB = "runs/remote_eval/results.db"  # where a policy server's evaluation goes without --db


def eval_sweep_config(config: EvalConfig) -> SweepConfig:
    """The sweep that `robopolicy eval` runs for a config that stores its episodes."""
    from robopolicy.train.checkpoint import load_meta, resolve_checkpoint

    policy = config.policy or config.checkpoint
    tasks = tuple(dict.fromkeys([*config.tasks, *([config.task] if config.task else [])]))
    if is_remote(policy):
        db = config.db or REMOTE_DB
        trained_on = connect_remote(policy, config.obs_mapping).task if not (config.suite or tasks) else ""
    else:
        directory, _ = resolve_checkpoint(policy)
        db = config.db or str(directory.parent / "eval" / "results.db")
        trained_on = str(load_meta(policy)[2].get("task", "")) if not (config.suite or tasks) else ""
    if not config.suite and not tasks:
        if not trained_on:
            raise UserError(f"{policy}: the policy names no task; pass --suite or --tasks")
        tasks = (trained_on,)
    execution = config.execution
    if config.max_steps and not execution.max_steps:
        execution = replace(execution, max_steps=config.max_steps)
    return SweepConfig(
        db=db,
        checkpoints=(policy,),
        suites=(config.suite,) if config.suite else (),
        tasks=tasks,
        init_states=config.init_states,
        seeds=config.seeds or (config.seed,),
        settings=(execution,),
        workers=config.workers,
        backend=config.backend,
        num_envs=config.num_envs,
        video_episodes=config.video_episodes,
        obs_mapping=config.obs_mapping,
    )


def format_task_table(run: EvaluatedRun) -> str:
    """Per-task success with Wilson 95 % interval and Beta posterior mean, then one line per suite."""
    tasks = sorted({(e["suite"], e["task"]) for e in run.episodes})
    width = max([len(t) for _, t in tasks] + [len("task")])
    lines = [
        f"{run.label}  ({run.run.policy})",
        f"{'task':<{width}}  {'success':>9}  {'rate':>6}  95% Wilson CI   posterior mean",
    ]
    for suite, task in tasks:
        s = summarize([e for e in run.episodes if e["task"] == task and e["suite"] == suite])
        lo, hi = s.wilson
        lines.append(
            f"{task:<{width}}  {f'{s.successes}/{s.trials}':>9}  {s.rate:>6.1%}  {lo:>6.1%}–{hi:<6.1%}   {s.posterior[0]:.1%}"
        )
    for suite in sorted({s for s, _ in tasks}):
        s = summarize([e for e in run.episodes if e["suite"] == suite])
        lines.append(f"{suite or 'all tasks'}: success {s.describe()}")
    return "\n".join(lines)


def evaluate_into_store(config: EvalConfig) -> tuple[str, EvaluatedRun]:
    """Run (or resume) the evaluation; returns the database path and the evaluated run."""
    sweep = eval_sweep_config(config)
    run_sweep(sweep)
    return sweep.db, _the_run(sweep)


def find_stored_run(config: EvalConfig) -> EvaluatedRun:
    """The run that `evaluate_into_store(config)` wrote, read back from its database without running."""
    return _the_run(eval_sweep_config(config))


def _the_run(sweep: SweepConfig) -> EvaluatedRun:
    from robopolicy.eval.sweep import sweep_runs

    wanted = sweep_runs(sweep)[0]
    for run in load_runs(sweep.db):
        if run.run.policy == wanted.policy_id and run.run.config_hash == wanted.config_hash:
            return run
    raise UserError(f"{sweep.db}: no finished episodes of {wanted.policy_id}")


def format_sweep_summary(db: str) -> str:
    """One line per run of the database: overall success with its interval."""
    return "\n".join(f"{r.label}: {summarize(r.episodes).describe()}" for r in load_runs(db))


def format_comparison(db: str | Path, a: str, b: str) -> str:
    """The paired comparison of runs `a` and `b` (see `robopolicy.eval.comparison.find_run`)."""
    runs = load_runs(db)
    run_a, run_b = find_run(runs, a), find_run(runs, b)
    c = paired(run_a, run_b)
    if c.shared == 0:
        raise UserError(
            f"{db}: runs {run_a.label} and {run_b.label} share no (task, initial state, seed) episodes"
        )
    return "\n".join(
        [
            f"A = {run_a.label} ({run_a.run.policy})",
            f"B = {run_b.label} ({run_b.run.policy})",
            f"shared episodes (same task, initial state, seed): {c.shared}",
            f"A: {c.a_rate.describe()}",
            f"B: {c.b_rate.describe()}",
            f"discordant: A only {c.a_only}, B only {c.b_only}",
            f"exact McNemar p = {c.p_value:.4g}",
            f"P(A > B) = {c.prob_a_better:.3f} (paired Bayesian, uniform Dirichlet prior)",
        ]
    )
