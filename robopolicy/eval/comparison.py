"""Comparisons of evaluated runs read from a results store: summaries, paired tests, letter groups."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robopolicy.errors import UserError
from robopolicy.eval.remote_policy import is_remote, remote_label
from robopolicy.eval.results_store import ResultsStore, RunRecord
from robopolicy.eval.stats import (
    beta_posterior,
    compact_letter_display,
    holm_adjust,
    mcnemar_exact,
    prob_a_beats_b_paired,
    wilson_interval,
)

Outcomes = dict[tuple[str, int, int], bool]  # (task, init state, seed) → success


@dataclass(frozen=True)
class RateSummary:
    """Successes over trials, with the Wilson 95 % interval and the Beta(1+s, 1+f) posterior."""

    successes: int
    trials: int

    @property
    def rate(self) -> float:
        return self.successes / self.trials if self.trials else float("nan")

    @property
    def wilson(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.trials)

    @property
    def posterior(self) -> tuple[float, tuple[float, float]]:
        return beta_posterior(self.successes, self.trials)

    def describe(self) -> str:
        lo, hi = self.wilson
        return f"{self.successes}/{self.trials} = {self.rate:.1%} (95% Wilson CI {lo:.1%}–{hi:.1%})"


@dataclass(frozen=True)
class PairedComparison:
    """A vs B on the episodes both ran (same task, initial state and seed)."""

    a: str
    b: str
    shared: int
    a_only: int  # A succeeded, B failed
    b_only: int
    a_rate: RateSummary
    b_rate: RateSummary

    @property
    def p_value(self) -> float:
        return mcnemar_exact(self.a_only, self.b_only)

    @property
    def prob_a_better(self) -> float:
        return prob_a_beats_b_paired(self.a_only, self.b_only)


@dataclass(frozen=True)
class EvaluatedRun:
    run: RunRecord
    label: str
    episodes: list[dict[str, Any]]

    def outcomes(self) -> Outcomes:
        return {(e["task"], e["init_state_id"], e["seed"]): bool(e["success"]) for e in self.episodes}


def run_labels(runs: list[RunRecord]) -> dict[int, str]:
    """Short unique names: '<run folder>@<step>' ('<host:port>[:<run folder>]@<step>' for a policy
    server), plus '/<settings>' when several settings were run."""
    several_settings = len({r.config_hash for r in runs}) > 1
    labels: dict[int, str] = {}
    for r in runs:
        if is_remote(r.policy):
            label = remote_label(r.policy, r.checkpoint_step)
        else:
            path = Path(r.policy)
            run_dir = path.parent.parent.name if path.parent.name == "checkpoints" else path.parent.name
            label = f"{run_dir}@{r.checkpoint_step}"
        if several_settings:
            label += "/" + (r.settings.get("name") or r.settings.get("mode", r.config_hash))
        labels[r.run_id] = label
    counts: dict[str, int] = defaultdict(int)
    for label in labels.values():
        counts[label] += 1
    return {rid: (f"{label}#{rid}" if counts[label] > 1 else label) for rid, label in labels.items()}


def load_runs(db: str | Path) -> list[EvaluatedRun]:
    """Every run of the store that has finished episodes."""
    with ResultsStore(db, create=False) as store:
        runs = store.runs()
        labels = run_labels(runs)
        loaded = [EvaluatedRun(r, labels[r.run_id], store.episodes(r.run_id)) for r in runs]
    return [r for r in loaded if r.episodes]


def failure_reason(reason: str | None) -> str:
    """An episode's failure reason without its step cap and the objects a cue resolved to, so that one
    unmet goal of a task is one reason whatever the episode's layout."""
    return (reason or "unknown").split(" (cap")[0].split(" (resolved:")[0]


def summarize(episodes: list[dict[str, Any]]) -> RateSummary:
    return RateSummary(sum(int(e["success"]) for e in episodes), len(episodes))


def paired(a: EvaluatedRun, b: EvaluatedRun) -> PairedComparison:
    oa, ob = a.outcomes(), b.outcomes()
    shared = sorted(set(oa) & set(ob))
    a_only = sum(oa[k] and not ob[k] for k in shared)
    b_only = sum(ob[k] and not oa[k] for k in shared)
    return PairedComparison(
        a.label,
        b.label,
        len(shared),
        a_only,
        b_only,
        RateSummary(sum(oa[k] for k in shared), len(shared)),
        RateSummary(sum(ob[k] for k in shared), len(shared)),
    )


def find_run(runs: list[EvaluatedRun], name: str) -> EvaluatedRun:
    """A run by id, exact label, or a unique substring of its label or policy path."""
    if name.isdigit():
        hits = [r for r in runs if r.run.run_id == int(name)]
    else:
        hits = [r for r in runs if r.label == name] or [
            r for r in runs if name in r.label or name in r.run.policy
        ]
    if len(hits) != 1:
        known = ", ".join(f"{r.run.run_id}={r.label}" for r in runs)
        what = "no run" if not hits else f"{len(hits)} runs"
        raise UserError(f"{name!r} matches {what}; give a run id or label ({known})")
    return hits[0]


@dataclass(frozen=True)
class PairwiseTable:
    """All pairs with shared episodes, Holm-adjusted, and letters (runs ordered best first)."""

    comparisons: list[PairedComparison]
    adjusted: list[float]
    letters: dict[str, str]


def pairwise(runs: list[EvaluatedRun], alpha: float = 0.05) -> PairwiseTable:
    ordered = sorted(runs, key=lambda r: -summarize(r.episodes).rate)
    comparisons = [
        c for i, a in enumerate(ordered) for b in ordered[i + 1 :] if (c := paired(a, b)).shared > 0
    ]
    adjusted = holm_adjust([c.p_value for c in comparisons])
    different = {frozenset((c.a, c.b)) for c, p in zip(comparisons, adjusted, strict=True) if p < alpha}
    letters = compact_letter_display([r.label for r in ordered], different)
    return PairwiseTable(comparisons, adjusted, letters)
