"""`robopolicy benchmark SUITE --recipe NAME`: one row of the suite results table, reproducibly.

Stages, each resumable and skipped when its output exists and was made by the same recipe:
1. data: `recipe.collect.demos_per_task` scripted demos of every task, from collection seeds (a
   stream disjoint from the fixed initial states), into OUT/SUITE/data-<hash>. Recipes that collect
   alike share it. A killed collection starts over (minutes).
2. train: one language-conditioned policy on the whole suite into OUT/SUITE/<label> (the label is
   the recipe's name, plus `-seedN` for another training seed); a killed run resumes from its last
   checkpoint.
3. eval: every task on its fixed initial states into OUT/SUITE/results.db, shared by every recipe
   run on the suite, so that `robopolicy report` and `robopolicy compare` pair them; a killed
   evaluation keeps its finished episodes.
4. report: the row (OUT/SUITE/<label>/row.json), a per-task table with Wilson 95 % intervals and the
   failure reasons, and OUT/SUITE/report/ over every run in the database.

Each stage writes `stage.json` with the hash of its recipe part and of the stages before it; a
folder made by a different recipe is refused with one line, never overwritten.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import tyro

from robopolicy.benchmark_recipes import Recipe, get_recipe
from robopolicy.data.collect import collect
from robopolicy.errors import UserError
from robopolicy.eval.comparison import EvaluatedRun, failure_reason, summarize
from robopolicy.eval.report import write_report
from robopolicy.eval.stored_eval import evaluate_into_store, find_stored_run, format_task_table
from robopolicy.tasks.suites import suite_tasks
from robopolicy.train.train_config import TrainConfig
from robopolicy.train_command import train_with_rollouts


@dataclass(frozen=True)
class BenchmarkConfig:
    """Run one recipe on one task suite: collect → train → evaluate → report.

    Attributes:
        suite: the task suite (see `robopolicy suites`).
        recipe: the named protocol (see `robopolicy.benchmark_recipes`): cpu, cpu_diffusion, cpu_long,
            cpu_ptp, gpu, tiny.
        out: root folder; the suite's data, runs, results database and report go to OUT/SUITE.
        tasks: only these tasks of the suite (empty: all); for quick looks and tests, not for the table.
        train_seed: training seed (-1: the recipe's); another seed trains into OUT/SUITE/RECIPE-seedN.
        eval_seeds: sampling seeds of the evaluation (empty: the recipe's).
        num_envs: env worker processes of the evaluation (0: the recipe's); does not change outcomes.
    """

    suite: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="SUITE")] = ""
    recipe: str = "cpu"
    out: str = "runs/benchmark"
    tasks: tuple[str, ...] = ()
    train_seed: int = -1
    eval_seeds: tuple[int, ...] = ()
    num_envs: int = 0

    def __post_init__(self) -> None:
        get_recipe(self.recipe)
        if self.num_envs < 0:
            raise ValueError(f"BenchmarkConfig.num_envs must be >= 0, got {self.num_envs}")


@dataclass(frozen=True)
class BenchmarkRow:
    """One row of the table: the recipe's success on the suite, with its per-task detail."""

    suite: str
    recipe: str
    label: str
    successes: int
    trials: int
    wilson95: tuple[float, float]
    per_task: dict[str, tuple[int, int]]
    failures: dict[str, int]
    description: str
    hashes: dict[str, str]
    seconds: dict[str, float]

    @property
    def rate(self) -> float:
        return self.successes / self.trials if self.trials else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "rate": self.rate}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BenchmarkRow:
        fields = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in fields}
        d["wilson95"] = tuple(d["wilson95"])
        d["per_task"] = {k: tuple(v) for k, v in d["per_task"].items()}
        return cls(**d)


def effective_recipe(config: BenchmarkConfig) -> Recipe:
    """The named recipe with this run's overrides (training seed, evaluation seeds, env workers)."""
    recipe = get_recipe(config.recipe)
    train = recipe.train
    if config.train_seed >= 0:
        train = dataclasses.replace(train, seed=config.train_seed)
    evaluation = recipe.eval
    if config.eval_seeds:
        evaluation = dataclasses.replace(evaluation, seeds=config.eval_seeds)
    if config.num_envs:
        evaluation = dataclasses.replace(evaluation, num_envs=config.num_envs)
    return dataclasses.replace(recipe, train=train, eval=evaluation)


def run_label(config: BenchmarkConfig) -> str:
    """The run's folder name and its name in the results database: the recipe, `-seedN` for another
    training seed, `-Ntasks-<hash>` for a subset of the suite's tasks."""
    label = config.recipe
    if config.train_seed >= 0 and config.train_seed != get_recipe(config.recipe).train.seed:
        label += f"-seed{config.train_seed}"
    if config.tasks:
        digest = hashlib.sha256(" ".join(sorted(set(config.tasks))).encode()).hexdigest()[:6]
        label += f"-{len(set(config.tasks))}tasks-{digest}"
    return label


class _Stage:
    """A stage folder's `stage.json`: {"hash", "done", "seconds", ...}."""

    def __init__(self, folder: Path, name: str, digest: str, key: str = "") -> None:
        self.folder, self.name, self.digest = folder, name, digest
        self.key = key or name  # the stage's name in a row's minutes per stage
        self.path = folder / "stage.json"
        self.state: dict[str, Any] = {}
        if self.path.is_file():
            self.state = json.loads(self.path.read_text())
            if self.state.get("hash") != digest:
                raise UserError(
                    f"{folder}: made by a different recipe ({name} hash {self.state.get('hash')}, this "
                    f"recipe's {digest}); move it away or pass another --out"
                )

    @property
    def done(self) -> bool:
        return bool(self.state.get("done"))

    def start(self) -> float:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write({"hash": self.digest, "done": False, "seconds": self.state.get("seconds", 0.0)})
        return time.perf_counter()

    def finish(self, started: float, **info: Any) -> None:
        seconds = self.state.get("seconds", 0.0) + time.perf_counter() - started
        self._write({"hash": self.digest, "done": True, "seconds": seconds, **info})

    def _write(self, state: dict[str, Any]) -> None:
        self.state = state
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.path)


def run_benchmark(config: BenchmarkConfig, progress: bool = True) -> BenchmarkRow:
    """Run (or resume) every stage; returns the row, also written to OUT/SUITE/LABEL/row.json."""
    tasks = _selected_tasks(config)
    recipe = effective_recipe(config)
    label = run_label(config)
    root = Path(config.out) / config.suite
    run_dir = root / label
    encoder_stage: tuple[_Stage, TrainConfig, Path] | None = None
    if recipe.encoder_recipe:  # PTP multistage: this recipe's head trains on that recipe's encoder
        encoder_config = dataclasses.replace(config, recipe=recipe.encoder_recipe)
        encoder_recipe = effective_recipe(encoder_config)
        encoder_dir = root / run_label(encoder_config)
        encoder_hash = encoder_recipe.stage_hashes(tasks)["train"]
        encoder_stage = (
            _Stage(encoder_dir / "stages" / "train", "train", encoder_hash, key="encoder"),
            encoder_recipe.train,
            encoder_dir,
        )
        hashes = recipe.stage_hashes(tasks, encoder=encoder_hash)
    else:
        hashes = recipe.stage_hashes(tasks)
    print(f"benchmark {config.suite} × {label}: {recipe.describe()}")

    data_stage = _Stage(root / f"data-{hashes['data']}", "data", hashes["data"])
    train_stage = _Stage(run_dir / "stages" / "train", "train", hashes["train"])
    eval_stage = _Stage(run_dir / "stages" / "eval", "eval", hashes["eval"])

    if data_stage.done:
        print(f"[1/4] data: done, {data_stage.state['episodes']} demos in {data_stage.state['dataset']}")
    else:
        print(f"[1/4] data: {recipe.collect.demos_per_task} demos of each of {len(tasks)} tasks")
        for stale in data_stage.folder.glob("*"):  # a killed collection starts over
            if stale.name != "stage.json":
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        t0 = data_stage.start()
        collected = collect(
            dataclasses.replace(
                recipe.collect,
                suite=config.suite,
                tasks=tasks if config.tasks else (),
                out=str(data_stage.folder / "dataset"),
            ),
            progress,
        )
        data_stage.finish(
            t0,
            episodes=collected.episodes,
            steps=collected.steps,
            expert_failures=collected.failures,
            dataset=str(collected.dataset_dir),
        )
    dataset = data_stage.state["dataset"]

    train = dataclasses.replace(recipe.train, dataset=dataset, out=str(run_dir))
    if encoder_stage is not None:
        stage, encoder_train, encoder_dir = encoder_stage
        what = f"stage 1, the {recipe.encoder_recipe} recipe's run"
        _train_stage(
            stage, dataclasses.replace(encoder_train, dataset=dataset, out=str(encoder_dir)), what, progress
        )
        train = dataclasses.replace(train, encoder=str(encoder_dir))
    _train_stage(train_stage, train, "stage 2, on its cached embeddings" if encoder_stage else "", progress)

    eval_config = dataclasses.replace(
        recipe.eval,
        policy=str(run_dir),
        suite="" if config.tasks else config.suite,
        tasks=tasks if config.tasks else (),
        db=str(root / "results.db"),
    )
    if eval_stage.done:
        print(f"[3/4] eval: done, episodes in {eval_config.db}")
        run = find_stored_run(eval_config)
    else:
        print(
            f"[3/4] eval: {len(tasks)} tasks × initial states {recipe.eval.init_states} into {eval_config.db}"
        )
        t0 = eval_stage.start()
        _, run = evaluate_into_store(eval_config)
        eval_stage.finish(t0, episodes=len(run.episodes))

    print("[4/4] report")
    stages = (data_stage, *([encoder_stage[0]] if encoder_stage else []), train_stage, eval_stage)
    row = _row(config, label, recipe, run, hashes, stages)
    (run_dir / "row.json").write_text(json.dumps(row.to_json(), indent=2))
    md, _ = write_report(eval_config.db, root / "report")
    print(format_task_table(run))
    print(format_failures(row))
    print(format_row(row))
    print(f"row: {run_dir / 'row.json'}\nreport: {md}")
    return row


def _train_stage(stage: _Stage, train: TrainConfig, what: str, progress: bool) -> None:
    """Train `train` into its `out` unless the stage is done; a killed run resumes from its last checkpoint."""
    what = f" ({what})" if what else ""
    if stage.done:
        print(f"[2/4] train{what}: done, {stage.state['steps']} steps in {train.out}")
        return
    print(f"[2/4] train{what}: {train.steps} steps into {train.out} (resumes from its last checkpoint)")
    t0 = stage.start()
    trained = train_with_rollouts(train, progress=progress)
    stage.finish(
        t0,
        steps=trained.final_step,
        final_loss=trained.final_loss,
        steps_per_second=trained.steps_per_second,
        checkpoint=str(trained.checkpoint_dir),
    )


def _selected_tasks(config: BenchmarkConfig) -> tuple[str, ...]:
    if not config.suite:
        raise UserError(
            "name a suite, e.g. `robopolicy benchmark libero_style_spatial` (see `robopolicy suites`)"
        )
    try:
        tasks = suite_tasks(config.suite)
    except ValueError as e:  # an unknown suite names the known ones
        raise UserError(str(e)) from None
    unknown = [t for t in config.tasks if t not in tasks]
    if unknown:
        raise UserError(f"--tasks: {', '.join(unknown)} not in suite {config.suite!r}")
    return tuple(t for t in tasks if not config.tasks or t in config.tasks)


def _row(
    config: BenchmarkConfig,
    label: str,
    recipe: Recipe,
    run: EvaluatedRun,
    hashes: dict[str, str],
    stages: tuple[_Stage, ...],
) -> BenchmarkRow:
    overall = summarize(run.episodes)
    per_task: dict[str, tuple[int, int]] = {}
    for task in sorted({e["task"] for e in run.episodes}):
        s = summarize([e for e in run.episodes if e["task"] == task])
        per_task[task] = (s.successes, s.trials)
    failures = Counter(
        f"{e['task']}: {failure_reason(e['failure_reason'])}" for e in run.episodes if not e["success"]
    )
    return BenchmarkRow(
        suite=config.suite,
        recipe=config.recipe,
        label=label,
        successes=overall.successes,
        trials=overall.trials,
        wilson95=overall.wilson,
        per_task=per_task,
        failures=dict(failures.most_common()),
        description=recipe.describe(),
        hashes=hashes,
        seconds={s.key: round(float(s.state.get("seconds", 0.0)), 1) for s in stages},
    )


def format_row(row: BenchmarkRow) -> str:
    lo, hi = row.wilson95
    total = sum(row.seconds.values())
    stages = ", ".join(f"{k} {v / 60:.1f}" for k, v in row.seconds.items())
    return (
        f"{row.suite} × {row.label}: {row.successes}/{row.trials} = {row.rate:.1%} "
        f"(95% Wilson CI {lo:.1%}–{hi:.1%}); {total / 60:.1f} min ({stages} min)"
    )


def format_failures(row: BenchmarkRow) -> str:
    if not row.failures:
        return "failures: none"
    return "failures by task and reason:\n" + "\n".join(f"  {n:>4}  {k}" for k, n in row.failures.items())
