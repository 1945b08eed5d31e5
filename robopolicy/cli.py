"""`robopolicy <verb> [--preset NAME] [options]`.

Each verb parses one frozen config dataclass with tyro, starting from a named preset, so
`robopolicy train --preset quickstart --steps 500` is the quickstart's training with fewer steps.
Errors in user input print one line and exit with status 2.
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

Every command takes --preset NAME (see `robopolicy <command> --help` for its presets and options).
Start with `robopolicy quickstart`: demos → RLDS dataset → flow-matching policy → evaluation.
"""


@dataclass(frozen=True)
class Verb:
    summary: str
    run: Callable[[Any], None]


def _collect(config: Any) -> None:
    from robopolicy.data.collect import collect, describe

    result = collect(config)
    print(json.dumps(describe(result), indent=2))


def _train(config: Any) -> None:
    from robopolicy.train.trainer import train

    result = train(config)
    print(
        f"trained {result.final_step} steps, final loss {result.final_loss:.4f}, "
        f"{result.steps_per_second:.1f} steps/s; checkpoints in {result.checkpoint_dir}"
    )


def _eval(config: Any) -> None:
    from robopolicy.eval.evaluate_checkpoint import evaluate_checkpoint, format_summary

    summary, results_path = evaluate_checkpoint(config)
    print(format_summary(summary))
    print(f"results: {results_path}")
    if summary.video:
        print(f"video:   {summary.video}")


def _quickstart(config: Any) -> None:
    from robopolicy.quickstart import run_quickstart

    run_quickstart(config)


def _pretrain(config: Any) -> None:
    from robopolicy.train.pretrain_dynamo import pretrain_dynamo

    result = pretrain_dynamo(config)
    probe = result.probes[-1]["probe"] if result.probes else {}
    print(
        f"pretrained {result.final_step} steps, final loss {result.final_loss:.4f}, "
        f"{result.steps_per_second:.1f} steps/s; held-out probe MSE {json.dumps(probe)}; "
        f"encoder checkpoints in {result.checkpoint_dir}"
    )


VERBS: dict[str, Verb] = {
    "collect": Verb("record scripted-expert demonstrations of a task as an RLDS dataset", _collect),
    "train": Verb("train a flow-matching policy on an RLDS dataset (resumes an existing run)", _train),
    "eval": Verb("evaluate a checkpoint on a task's fixed initial states, with a 95% Wilson interval", _eval),
    "quickstart": Verb("collect → train → evaluate on the default task, in one go", _quickstart),
    "pretrain": Verb("pretrain a visual encoder without actions: `robopolicy pretrain dynamo`", _pretrain),
}

# Verbs whose first argument names a method; their presets are PRESETS["<verb> <method>"].
_METHOD_VERBS = ("pretrain",)


def _split_method(verb: str, args: list[str], presets: dict[str, Any]) -> tuple[str | None, list[str]]:
    """`pretrain dynamo ...` → ("pretrain dynamo", [...]); prints the methods and returns None otherwise."""
    methods = [key.split(" ", 1)[1] for key in presets if key.startswith(verb + " ")]
    if args and f"{verb} {args[0]}" in presets:
        return f"{verb} {args[0]}", args[1:]
    if args and not args[0].startswith("-"):
        print(
            f"robopolicy {verb}: unknown method {args[0]!r}; choose one of {', '.join(methods)}",
            file=sys.stderr,
        )
    else:
        usage = f"usage: robopolicy {verb} {{{','.join(methods)}}} [--preset NAME] [options]"
        print(usage, file=sys.stdout if args[:1] in (["-h"], ["--help"]) else sys.stderr)
    return None, args


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


def _parse(verb: str, cls: type, default: Any, args: list[str], description: str) -> Any:
    """Parse with tyro; a parse error becomes one line on stderr (and None) instead of tyro's panel."""
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
        lines = [ln.strip(" │╭╮╰╯─") for ln in captured.getvalue().splitlines()]
        detail = next((ln for ln in lines[1:] if ln and not ln.startswith(("For full", "Argument"))), "")
        print(f"robopolicy {verb}: error: {detail or 'invalid arguments'} (see --help)", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    width = max(len(v) for v in VERBS)
    usage = _USAGE.format(commands="\n".join(f"  {name:<{width}}  {v.summary}" for name, v in VERBS.items()))
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0
    verb, args = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"robopolicy: unknown command {verb!r}; choose one of {', '.join(VERBS)}", file=sys.stderr)
        return 2

    from robopolicy.errors import UserError
    from robopolicy.presets import PRESETS

    key = verb
    if verb in _METHOD_VERBS:
        key, args = _split_method(verb, args, PRESETS)
        if key is None:
            return 0 if args[:1] in (["-h"], ["--help"]) else 2
    presets = PRESETS[key]
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
    try:
        config = _parse(key, type(default), default, args, description)
        if config is None:
            return 2
        VERBS[verb].run(config)
    except (UserError, ValueError) as e:
        # ValueError covers config validation (__post_init__) and task-spec errors, which name the field.
        print(f"robopolicy {verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"robopolicy {verb}: interrupted; finished work on disk is kept", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
