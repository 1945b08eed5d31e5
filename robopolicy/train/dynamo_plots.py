"""Plots of a DynaMo pretraining log: losses, held-out probe MSE and embedding spread over steps.

`pretrain_dynamo` redraws `<run>/pretraining.png` after every probe, so a run in progress can be
watched; notebooks and benchmarks draw the same figure from `train_log.jsonl` rows.
"""

from __future__ import annotations

import json
import os
from typing import Any

from etils import epath

PROBE_STYLES = (("linear", "o-"), ("knn", "s--"))


def read_log(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(loss rows, probe rows) of a `train_log.jsonl`."""
    rows = [json.loads(line) for line in epath.Path(path).read_text().splitlines() if line.strip()]
    return [r for r in rows if "loss" in r], [r for r in rows if "probe" in r]


def plot_pretraining(
    losses: list[dict[str, Any]],
    probes: list[dict[str, Any]],
    path: str | os.PathLike[str] | None = None,
    baselines: dict[str, dict[str, dict[str, float]]] | None = None,
) -> Any:
    """Four panels: dynamics loss; held-out state and action probe MSE (standardised, 1.0 = mean);
    the scale-free spread of held-out embeddings (normalised std and effective rank).

    `baselines` maps a label (e.g. "random init") to a probe result drawn as horizontal lines.
    Saves to `path` when given and returns the matplotlib figure (a notebook displays it).
    """
    # A bare Figure, not pyplot: saving from inside a training loop must not switch the backend
    # of a notebook's kernel or leave figures open.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 3.4))
    axes = fig.subplots(1, 4)
    ax = axes[0]
    ax.plot([r["step"] for r in losses], [r["dynamics"] for r in losses], label="1 − cos")
    ax.set_yscale("log")
    ax.set_title("dynamics loss", fontsize=9)
    steps = [p["step"] for p in probes]
    for ax, target in zip(axes[1:3], ("state", "action"), strict=True):
        for i, (kind, style) in enumerate(PROBE_STYLES):
            ax.plot(
                steps,
                [p["probe"][target][kind] for p in probes],
                style,
                color=f"C{i}",
                label=f"DynaMo {kind}",
            )
            for j, (label, probe) in enumerate((baselines or {}).items()):
                ax.axhline(
                    probe[target][kind],
                    color=f"C{i}",
                    ls=":",
                    alpha=0.4 + 0.6 / (j + 1),
                    label=f"{label} {kind}",
                )
        ax.set_title(f"held-out probe MSE → {target}", fontsize=9)
    axes[2].legend(fontsize=7)
    ax = axes[3]
    spread = [p for p in probes if "spread" in p["probe"]]
    ax.plot(
        [p["step"] for p in spread],
        [p["probe"]["spread"]["effective_rank"] for p in spread],
        "o-",
        label="effective rank",
    )
    ax.set_ylabel("effective rank")
    twin = ax.twinx()
    twin.plot(
        [p["step"] for p in spread],
        [p["probe"]["spread"]["normalized_std"] for p in spread],
        "s--",
        color="C3",
        label="normalised std",
    )
    twin.set_ylabel("normalised std (1 = isotropic)")
    ax.set_title("held-out embedding spread", fontsize=9)
    for a in axes:
        a.set_xlabel("pretraining step")
    fig.tight_layout()
    if path is not None:
        with epath.Path(path).open("wb") as f:  # a run folder may be a bucket URL
            fig.savefig(f, dpi=100, format="png")
    return fig
