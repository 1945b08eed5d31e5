"""Configurations of the `sweep`, `report`, `compare` and `results import` verbs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import tyro


@dataclass(frozen=True)
class SweepCommandConfig:
    """Run an evaluation sweep described by a TOML file (see `robopolicy.eval.sweep_config`).

    Attributes:
        config: the sweep TOML file.
        backend: override the file's backend: "local" (a pool of `workers` processes, each with its
            own policy copy, one episode at a time), "vector" (one policy process, inference batched
            over `num_envs` env worker processes) or "ray" (the `[ray]` extra).
        blind: randomise the order in which policies are run (shared initial states).
        workers: override the file's number of worker processes of the local backend (-1: keep).
        num_envs: override the file's number of env workers of the vector backend (0: keep).
        ray_address: override the file's Ray cluster address, e.g. "ray://head:10001" or "auto"
            (empty: keep).
    """

    config: str = "sweep.toml"
    backend: Literal["", "local", "vector", "ray"] = ""
    blind: bool = False
    workers: int = -1
    num_envs: int = 0
    ray_address: str = ""


@dataclass(frozen=True)
class ReportConfig:
    """Write a markdown and HTML report of a results database.

    Attributes:
        db: the results database.
        out: output folder (report.md, report.html, plots, videos).
    """

    db: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="RESULTS.DB")] = "results.db"
    out: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="OUT")] = "report"


@dataclass(frozen=True)
class CompareConfig:
    """Paired comparison of two runs of a results database on their shared initial states and seeds.

    Attributes:
        a: run A, by id, label (as in the report) or a unique part of its policy path.
        b: run B, likewise.
        db: the results database.
    """

    a: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="A")] = ""
    b: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="B")] = ""
    db: str = ""


@dataclass(frozen=True)
class ResultsImportConfig:
    """Record the episodes of an episode log (JSON lines written by the LIBERO client) in a results
    database, where `robopolicy report` and `robopolicy compare` read them.

    Attributes:
        log: the episode log (one JSON line per episode; see robopolicy/client/episode_log.py).
        db: the results database (created if missing); importing again updates, never duplicates.
    """

    log: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="LOG.JSONL")] = "episodes.jsonl"
    db: str = "results.db"
