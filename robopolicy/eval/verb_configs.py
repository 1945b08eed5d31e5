"""Configurations of the `sweep`, `report` and `compare` verbs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import tyro


@dataclass(frozen=True)
class SweepCommandConfig:
    """Run an evaluation sweep described by a TOML file (see `robopolicy.eval.sweep_config`).

    Attributes:
        config: the sweep TOML file.
        backend: override the file's backend: "local" process pool or "ray" (the `[ray]` extra).
        blind: randomise the order in which policies are run (shared initial states).
        workers: override the file's number of worker processes (-1: keep).
    """

    config: str = "sweep.toml"
    backend: Literal["", "local", "ray"] = ""
    blind: bool = False
    workers: int = -1


@dataclass(frozen=True)
class ReportConfig:
    """Write a markdown and HTML report of a results database.

    Attributes:
        db: the results database.
        out: output folder (report.md, report.html, plots, videos).
    """

    db: tyro.conf.Positional[str] = "results.db"
    out: tyro.conf.Positional[str] = "report"


@dataclass(frozen=True)
class CompareConfig:
    """Paired comparison of two runs of a results database on their shared initial states and seeds.

    Attributes:
        a, b: runs by id, label (as in the report) or a unique part of the policy path.
        db: the results database.
    """

    a: tyro.conf.Positional[str] = ""
    b: tyro.conf.Positional[str] = ""
    db: str = ""
