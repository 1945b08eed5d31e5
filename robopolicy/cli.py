"""`robopolicy <verb> [--preset NAME] [options]`.

Each verb parses one frozen config dataclass with tyro, starting from a named preset, so
`robopolicy train --preset quickstart --steps 500` is the quickstart's training with fewer steps.

Exit statuses: 0 success; 2 a problem with the user's input, printed as one line without a
traceback: bad arguments or config values (tyro's parse errors and the configs' own validation) and
`robopolicy.errors.UserError`, which code raises where a user's file, flag or dataset is at fault;
1 anything else, which is a bug and keeps its traceback; 130 interrupted.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_USAGE = """usage: robopolicy <command> [--preset NAME] [options]

Learn visuomotor robot policies from demonstrations, in JAX.

commands:
{commands}

Every command takes --preset NAME (see `robopolicy <command> --help` for its presets and options);
those that run tasks take --tasks-dir DIR, a folder of task folders searched before the bundled ones.
Compiled programs are cached on disk (ROBOPOLICY_COMPILE_CACHE, default ~/.cache/robopolicy/jax; off
with --no-compile-cache on any command or ROBOPOLICY_COMPILE_CACHE=off).
Start with `robopolicy quickstart`: demos → RLDS dataset → flow-matching policy → evaluation.
"""


@dataclass(frozen=True)
class Verb:
    summary: str
    run: Callable[[Any], int | None]  # returns the exit status, None meaning 0
    takes_tasks: bool = False  # accepts --tasks-dir (the command runs or lists tasks)


def _collect(config: Any) -> None:
    from robopolicy.data.collect import collect, describe

    result = collect(config)
    print(json.dumps(describe(result), indent=2))


def _first_process() -> bool:
    """Whether this is the first process of a run (the one that reports it), or the only one."""
    import jax

    return jax.process_index() == 0


def _train(config: Any) -> None:
    from robopolicy.train_command import train_with_rollouts

    if config.dry_run:
        from robopolicy.train.dry_run import dry_run

        print("\n".join(dry_run(config).lines()))
        return

    result = train_with_rollouts(config)
    if not _first_process():
        return
    print(
        f"trained {result.final_step} steps, final loss {result.final_loss:.4f}, "
        f"{result.steps_per_second:.1f} steps/s; checkpoints in {result.checkpoint_dir}"
    )


def _export(config: Any) -> None:
    from robopolicy.train.export import export_bundle

    print(f"inference bundle written to {export_bundle(config)}")


def _eval(config: Any) -> None:
    from robopolicy.eval.evaluate_checkpoint import evaluate_checkpoint, format_summary

    if config.uses_store:
        from robopolicy.eval.stored_eval import evaluate_into_store, format_task_table

        db, run = evaluate_into_store(config)
        print(format_task_table(run))
        print(f"results: {db}")
        return
    summary, results_path = evaluate_checkpoint(config)
    print(format_summary(summary))
    print(f"results: {results_path}")
    if summary.video:
        print(f"video:   {summary.video}")


def _serve(config: Any) -> None:
    from robopolicy.serve.server import serve_policy

    serve_policy(config)


def _sweep(config: Any) -> None:
    from robopolicy.eval.stored_eval import format_sweep_summary
    from robopolicy.eval.sweep import run_sweep
    from robopolicy.eval.sweep_config import load_sweep_toml

    sweep = load_sweep_toml(
        config.config,
        backend=config.backend or None,
        blind=True if config.blind else None,
        workers=config.workers if config.workers >= 0 else None,
        num_envs=config.num_envs or None,
        ray_address=config.ray_address or None,
    )
    run_sweep(sweep)
    print(format_sweep_summary(sweep.db))
    print(f"results: {sweep.db}")


def _report(config: Any) -> None:
    from robopolicy.eval.report import write_report

    md, html = write_report(config.db, config.out)
    print(f"report: {md}\nreport: {html}")


def _compare(config: Any) -> None:
    from robopolicy.errors import UserError
    from robopolicy.eval.stored_eval import format_comparison

    if not (config.a and config.b and config.db):
        raise UserError("compare: usage: robopolicy compare A B --db RESULTS.db")
    print(format_comparison(config.db, config.a, config.b))


def _results_import(config: Any) -> None:
    from robopolicy.eval.results_import import import_episode_log

    runs, episodes = import_episode_log(config.log, config.db)
    print(f"imported {episodes} episodes of {runs} runs into {config.db}")


def _quickstart(config: Any) -> None:
    from robopolicy.quickstart import run_quickstart

    run_quickstart(config)


def _benchmark(config: Any) -> None:
    from robopolicy.suite_benchmark import run_benchmark

    run_benchmark(config)


def _benchmark_table(config: Any) -> None:
    from robopolicy.benchmark_table import load_rows, table_markdown, write_table

    print(table_markdown(load_rows(config.out)))
    md, png = write_table(config)
    print(f"table: {md}\nplot:  {png}")


def _data_info(config: Any) -> int:
    from robopolicy.data.data_commands import run_info

    return run_info(config)


def _data_check(config: Any) -> int:
    from robopolicy.data.data_commands import run_check

    return run_check(config)


def _data_convert(config: Any) -> None:
    import json

    from robopolicy.data.dataset_convert import convert, describe

    result = convert(config)
    print(json.dumps(describe(result), indent=2))


def _cache_embeddings(config: Any) -> None:
    from robopolicy.train.cache_embeddings import cache_embeddings

    result = cache_embeddings(config)
    rate = result.frames / result.seconds if result.seconds > 0 else float("nan")
    print(
        f"embedded {result.frames} frames of {result.episodes} episodes in {result.seconds:.1f} s "
        f"({rate:.0f} frames/s); dataset: {result.dataset_dir}"
    )


def _suites(config: Any) -> None:
    from robopolicy.tasks.suites_listing import format_suites

    print(format_suites(config))


def _expert_check(config: Any) -> None:
    from robopolicy.sim.expert_check import checked_label, format_table, run_expert_check

    print(format_table(checked_label(config), run_expert_check(config)))


def _init_states(config: Any) -> None:
    from robopolicy.sim.init_states import write_init_states

    path = write_init_states(config)
    print(f"wrote {config.num_states} initial states to {path}")


def _pretrain(config: Any) -> None:
    from robopolicy.train.pretrain_dynamo import pretrain_dynamo

    result = pretrain_dynamo(config)
    if not _first_process():
        return
    probe = result.evaluations[-1]["probe"] if result.evaluations else {}
    print(
        f"pretrained {result.final_step} steps, final loss {result.final_loss:.4f}, "
        f"{result.steps_per_second:.1f} steps/s; held-out probe MSE {json.dumps(probe)}; "
        f"encoder checkpoints in {result.checkpoint_dir}"
    )


def _launch(config: Any) -> int:
    from robopolicy.launch import launch
    from robopolicy.presets import PRESETS
    from robopolicy.train.loop_config import LoopConfig

    return launch(config, [v for v, p in PRESETS.items() if isinstance(p["default"], LoopConfig)])


def _doctor(config: Any) -> int:
    from robopolicy.doctor import run_doctor

    return run_doctor(config)


VERBS: dict[str, Verb] = {
    "collect": Verb("record scripted-expert demonstrations of a task as an RLDS dataset", _collect, True),
    "train": Verb(
        "train a policy (flow or diffusion, any preset) on an RLDS dataset; resumes a run", _train, True
    ),
    "export": Verb(
        "write an inference bundle (EMA weights, stats, vocabulary, config) of a checkpoint", _export
    ),
    "eval": Verb(
        "evaluate a checkpoint on fixed initial states (of a suite), with 95% intervals", _eval, True
    ),
    "serve": Verb(
        "serve a policy over websocket + msgpack (openpi-compatible) to robots and other simulators", _serve
    ),
    "sweep": Verb(
        "evaluate checkpoints × tasks × initial states × seeds × settings into a results database",
        _sweep,
        True,
    ),
    "report": Verb(
        "write a markdown and HTML report (tables, plots, comparisons, videos) of a results database", _report
    ),
    "compare": Verb("paired comparison of two evaluated runs: exact McNemar test and P(A > B)", _compare),
    "results import": Verb(
        "record an episode log (JSON lines, e.g. from the LIBERO client) in a results database",
        _results_import,
    ),
    "quickstart": Verb("collect → train → evaluate on the default task, in one go", _quickstart, True),
    "benchmark": Verb(
        "one row of the suite table: collect → train one multi-task policy → evaluate a suite (resumable)",
        _benchmark,
        True,
    ),
    "benchmark table": Verb(
        "the suite × recipe table and plot of every finished benchmark row", _benchmark_table
    ),
    "data info": Verb("print a dataset's schema, counts, tasks and action/state statistics", _data_info),
    "data check": Verb("validate every episode of one or more datasets and list all problems", _data_check),
    "data convert": Verb(
        "convert RLDS (array_record/tfrecord) or LeRobot data into robopolicy's RLDS, resizing if asked",
        _data_convert,
    ),
    "cache-embeddings": Verb(
        "write per-frame embeddings of a dataset with a trained policy's encoder (PTP multistage)",
        _cache_embeddings,
    ),
    "suites": Verb("list the task suites, their tasks and instructions", _suites, True),
    "expert-check": Verb(
        "scripted-expert success on each task's 50 fixed initial states", _expert_check, True
    ),
    "init-states": Verb(
        "generate a task's fixed evaluation initial states (init_states.npz next to its task.toml)",
        _init_states,
        True,
    ),
    "pretrain dynamo": Verb(
        "pretrain a visual encoder by DynaMo dynamics prediction, without actions", _pretrain
    ),
    "launch": Verb("run a training command as several jax.distributed processes on this machine", _launch),
    "doctor": Verb(
        "check devices, library versions, rendering, the compile cache and (optionally) a Ray cluster",
        _doctor,
    ),
}


def _split_preset(args: list[str]) -> tuple[str, list[str]]:
    """Pull `--preset NAME` / `--preset=NAME` out of the argument list."""
    rest: list[str] = []
    preset = "default"
    it = iter(args)
    for arg in it:
        if arg == "--preset":
            preset = next(it, "")
        elif arg.startswith("--preset="):
            preset = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return preset, rest


TASKS_DIR_HELP = "also look for task folders (DIR/TASK/task.toml) in DIR, ahead of ROBOPOLICY_TASK_PATH and the bundled tasks"


def _use_tasks_dirs(verb: str, args: list[str]) -> list[str]:
    """Pull every `--tasks-dir DIR` / `--tasks-dir=DIR` out of the arguments of a verb that takes tasks
    and put the folders, in the order given, ahead of `ROBOPOLICY_TASK_PATH` in this process's
    environment, which worker processes inherit."""
    from robopolicy.tasks.task_path import prepend_task_dirs

    if not VERBS[verb].takes_tasks:
        return args
    rest: list[str] = []
    dirs: list[str] = []
    it = iter(args)
    for arg in it:
        if arg == "--tasks-dir" or arg.startswith("--tasks-dir="):
            dirs.append(next(it, "") if arg == "--tasks-dir" else arg.split("=", 1)[1])
        else:
            rest.append(arg)
    prepend_task_dirs(dirs)
    return rest


NO_COMPILE_CACHE_FLAG = "--no-compile-cache"


def _use_compile_cache(args: list[str]) -> list[str]:
    """Turn JAX's persistent compilation cache on for this process and those it starts, unless
    `--no-compile-cache` (any command) asks otherwise; the arguments without that flag."""
    from robopolicy.compile_cache import enable_compile_cache

    enable_compile_cache(NO_COMPILE_CACHE_FLAG not in args)
    return [a for a in args if a != NO_COMPILE_CACHE_FLAG]


def _parse(verb: str, cls: type, default: Any, args: list[str], description: str) -> Any:
    """Parse with tyro; a parse or validation error becomes one line on stderr (and None) instead of
    tyro's panel. Config validation (`__post_init__` raising ValueError) is reported by tyro the same
    way, so it lands here too."""
    import tyro

    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            return tyro.cli(
                cls, default=default, args=args, prog=f"robopolicy {verb}", description=description
            )
    except SystemExit as exit_:
        if not exit_.code:
            sys.stderr.write(captured.getvalue())
            raise
        print(
            f"robopolicy {verb}: error: {_panel_message(captured.getvalue())} (see --help)", file=sys.stderr
        )
        return None


def _panel_message(panel: str) -> str:
    """The message of tyro's error panel, its wrapped lines joined into one."""
    lines = [ln.strip(" │╭╮╰╯─") for ln in panel.splitlines()]
    body: list[str] = []
    for line in lines[1:]:
        if not line:
            if body:
                break  # the separator line (all rule characters) ends the message
            continue
        if line.startswith(("For full", "Argument")):
            break
        body.append(line)
    return " ".join(body) or "invalid arguments"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    width = max(len(v) for v in VERBS)
    usage = _USAGE.format(commands="\n".join(f"  {name:<{width}}  {v.summary}" for name, v in VERBS.items()))
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    verb, args = argv[0], argv[1:]
    if args and f"{verb} {args[0]}" in VERBS:  # two-word commands such as `data info`
        verb, args = f"{verb} {args[0]}", args[1:]
    elif verb not in VERBS and any(name.startswith(f"{verb} ") for name in VERBS):
        subs = ", ".join(name.split(" ", 1)[1] for name in VERBS if name.startswith(f"{verb} "))
        if args and not args[0].startswith("-"):
            print(
                f"robopolicy {verb}: unknown sub-command {args[0]!r}; choose one of {subs}", file=sys.stderr
            )
        else:
            print(f"robopolicy {verb}: choose a sub-command: {subs}", file=sys.stderr)
        return 2
    if verb not in VERBS:
        print(f"robopolicy: unknown command {verb!r}; choose one of {', '.join(VERBS)}", file=sys.stderr)
        return 2

    from robopolicy.errors import UserError
    from robopolicy.presets import PRESETS

    key = verb
    presets = PRESETS[key]
    # What follows `--` is another command line (`robopolicy launch -- train --preset tiny ...`).
    cut = args.index("--") if "--" in args else len(args)
    args, passthrough = args[:cut], args[cut:]
    preset, args = _split_preset(args)
    if preset not in presets:
        print(
            f"robopolicy {key}: unknown preset {preset!r}; choose one of {', '.join(presets)}",
            file=sys.stderr,
        )
        return 2
    default = presets[preset]
    description = (
        f"{VERBS[verb].summary}.\n\n"
        f"Presets (--preset NAME, default 'default'): {', '.join(presets)}. Showing defaults of '{preset}'."
    )
    if VERBS[verb].takes_tasks:
        description += f"\n\n--tasks-dir DIR (repeatable): {TASKS_DIR_HELP}."
    try:
        args = _use_compile_cache(args)
        args = _use_tasks_dirs(verb, args)
        config = _parse(key, type(default), default, args + passthrough, description)
        if config is None:
            return 2
        status = VERBS[verb].run(config)
    except UserError as e:
        # Only errors that code marked as the user's: anything else is a bug and keeps its traceback.
        print(f"robopolicy {verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"robopolicy {verb}: interrupted; finished work on disk is kept", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
