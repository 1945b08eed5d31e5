"""DynaMo's ablations (Cui et al. 2024, §4.5) as config switches of the one pretraining path.

Run: `python benchmarks/bench_dynamo_ablations.py --dataset DATASET [--preset tiny] [--steps 300 |
--epochs 40] [--ablations dynamo no_covariance ...] [--seed 0]`.

Each ablation pretrains from the same preset with one change to the model (`ABLATIONS`), on the
same episodes, seed and batches, and the script prints a markdown table for benchmarks/RESULTS.md:
the final loss and the held-out probes of the final encoder, standardised (1.0 = predicting the
training mean): linear and kNN probes and the nearest-neighbour distance to the robot state and,
when the dataset stores them, to the objects' poses; the linear probe to the actions; and the
embeddings' normalised std. The ablations:

- dynamo: the preset as it is;
- no_forward_model: the latent action alone predicts the next embedding (`dynamics="inverse_only"`);
- no_inverse_model: the forward model sees the past embeddings and no latent action
  (`dynamics="forward_only"`);
- no_bottleneck: the latent action as wide as an embedding (`latent_dim = feature_dim`);
- no_covariance: no covariance regulariser (`covariance_weight = 0`);
- no_stop_gradient: gradients flow into the prediction targets (`stop_gradient = False`);
- short_context: windows of 2 frames (one transition) instead of the preset's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine_line

from robopolicy.data.episode import Episode
from robopolicy.data.rlds_reader import load_episodes
from robopolicy.models.dynamo_config import DynamoConfig
from robopolicy.presets import PRETRAIN_DYNAMO
from robopolicy.train.pretrain_dynamo import pretrain_dynamo
from robopolicy.train.pretrain_dynamo_config import PretrainDynamoConfig

ABLATIONS: dict[str, Callable[[DynamoConfig], DynamoConfig]] = {
    "dynamo": lambda m: m,
    "no_forward_model": lambda m: dataclasses.replace(m, dynamics="inverse_only"),
    "no_inverse_model": lambda m: dataclasses.replace(m, dynamics="forward_only"),
    "no_bottleneck": lambda m: dataclasses.replace(
        m, latent_dim=m.feature_dim * (1 if m.views == "per_view" else len(m.cameras))
    ),
    "no_covariance": lambda m: dataclasses.replace(m, covariance_weight=0.0),
    "no_stop_gradient": lambda m: dataclasses.replace(m, stop_gradient=False),
    "short_context": lambda m: dataclasses.replace(m, window=2),
}


def run_ablations(
    base: PretrainDynamoConfig, episodes: list[Episode], names: Sequence[str], progress: bool = False
) -> dict[str, dict[str, Any]]:
    """Pretrain every named ablation of `base` (each in `<base.out>/<name>`) → per ablation its final
    loss, steps per second and final probe result."""
    rows = {}
    for name in names:
        config = dataclasses.replace(base, model=ABLATIONS[name](base.model), out=f"{base.out}/{name}")
        shutil.rmtree(config.out, ignore_errors=True)
        result = pretrain_dynamo(config, episodes, progress=progress)
        rows[name] = {
            "final_loss": result.final_loss,
            "steps_per_second": result.steps_per_second,
            "steps": result.final_step,
            "probe": result.evaluations[-1]["probe"],
        }
    return rows


def table(rows: dict[str, dict[str, Any]]) -> str:
    """The markdown table of `run_ablations`' rows."""
    objects = all("object_state" in r["probe"] for r in rows.values())
    header = ["ablation", "final loss", "state linear", "state kNN", "state NN"]
    header += ["objects linear", "objects kNN", "objects NN"] if objects else []
    header += ["action linear", "normalised std"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, r in rows.items():
        p = r["probe"]
        cells = [name, f"{r['final_loss']:.4f}"]
        for target in ("state", "object_state") if objects else ("state",):
            cells += [f"{p[target][k]:.3f}" for k in ("linear", "knn", "nearest_neighbour")]
        cells += [f"{p['action']['linear']:.3f}", f"{p['spread']['normalized_std']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", default="runs/bench_dynamo_ablations")
    parser.add_argument("--preset", default="tiny", choices=sorted(PRETRAIN_DYNAMO))
    parser.add_argument("--steps", type=int, default=0, help="0: the preset's")
    parser.add_argument("--epochs", type=float, default=0.0, help="> 0: replaces --steps")
    parser.add_argument("--batch-size", type=int, default=0, help="0: the preset's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ablations", nargs="+", default=list(ABLATIONS), choices=list(ABLATIONS))
    args = parser.parse_args(argv)

    preset = PRETRAIN_DYNAMO[args.preset]
    steps = args.steps or preset.steps
    base = dataclasses.replace(
        preset,
        dataset=args.dataset,
        out=args.out,
        steps=steps,
        epochs=args.epochs,
        batch_size=args.batch_size or preset.batch_size,
        seed=args.seed,
        probe_every=0,
    )
    episodes = load_episodes(args.dataset, base.mapping)
    rows = run_ablations(base, episodes, args.ablations)
    print("\n" + machine_line())
    first = next(iter(rows.values()))
    print(
        f"preset {args.preset}, {len(episodes)} episodes, {first['steps']} steps at batch {base.batch_size}, "
        f"seed {args.seed}; probes on the held-out episodes after the last step"
    )
    print(table(rows))
    print(json.dumps(rows))
    return rows


if __name__ == "__main__":
    main()
