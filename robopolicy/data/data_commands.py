"""Configs of `robopolicy data info` and `robopolicy data check`, and what each prints."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Annotated

import tyro

from robopolicy.data.dataset_check import check_datasets
from robopolicy.data.dataset_summary import format_summary, summarize
from robopolicy.data.key_mapping import check_mapping_spec
from robopolicy.errors import UserError

_MAPPING_HELP = "key mapping: auto, robopolicy, robopolicy_embeddings, libero, or a .toml file (see docs)"


@dataclass(frozen=True)
class DataInfoConfig:
    """Show a dataset's schema, episode and step counts, tasks and per-dimension action/state statistics.

    Attributes:
        path: the dataset folder (its version folder or any folder with exactly one dataset below).
        mapping: how the dataset's keys map to cameras, state, action and instruction.
        json: print JSON instead of the table.
    """

    path: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="PATH")] = ""
    mapping: str = "auto"
    json: bool = False


@dataclass(frozen=True)
class DataCheckConfig:
    """Validate every episode and list every problem (NaN/Inf, shapes, dtypes, missing keys, short
    episodes, inconsistent RLDS flags, shapes that differ between episodes, state/action values far
    outside the dataset's robust range or the mapping's action bounds, action dimensions that differ
    between the given datasets). Exit status 0 when clean, 1 when problems were found, 2 for usage
    errors.

    Attributes:
        paths: one or more dataset folders.
        mapping: how the datasets' keys map to cameras, state, action and instruction.
        json: print JSON instead of text.
    """

    paths: Annotated[tuple[str, ...], tyro.conf.Positional, tyro.conf.arg(metavar="PATH")] = ()
    mapping: str = "auto"
    json: bool = False


def run_info(config: DataInfoConfig) -> int:
    if not config.path:
        raise UserError("data info: give a dataset path, e.g. `robopolicy data info runs/quickstart/dataset`")
    check_mapping_spec(config.mapping)
    summary = summarize(config.path, config.mapping)
    print(json.dumps(summary, indent=2) if config.json else format_summary(summary))
    return 0


def run_check(config: DataCheckConfig) -> int:
    """Print the problems; 0 if there are none, 1 otherwise."""
    if not config.paths:
        raise UserError("data check: give one or more dataset paths")
    check_mapping_spec(config.mapping)
    results, cross = check_datasets(config.paths, config.mapping)
    problems = [p for r in results for p in r.problems] + cross
    if config.json:
        out = {
            "datasets": [
                {**{k: v for k, v in asdict(r).items() if k != "problems"}, "problems": len(r.problems)}
                for r in results
            ],
            "problems": [{**asdict(p), "text": str(p)} for p in problems],
        }
        print(json.dumps(out, indent=2))
    else:
        for p in problems:
            print(p)
        for r in results:
            verdict = "ok" if not r.problems else f"{len(r.problems)} problem(s)"
            print(
                f"{r.path}: {r.episodes} episodes, {r.valid_episodes} valid, mapping '{r.mapping}': {verdict}"
            )
        if cross:
            print(f"{len(cross)} problem(s) across datasets")
    return 1 if problems else 0
