"""DynaMo pretraining on cube_on_plate demos: throughput, and held-out probe MSE vs random-init encoders.

Run: `python benchmarks/bench_dynamo.py [--dataset runs/dynamo_bench/dataset] [--steps 300]`.
Collects 50 quickstart-style demos (64×64 agentview + wrist) first if the dataset is missing, pretrains
the `tiny` preset, then prints a markdown table for benchmarks/RESULTS.md: probe MSE (standardised
units, 1.0 = predicting the training mean) of linear (ridge) and kNN probes from the concatenated
per-view embeddings to the robot state and to the actions, on held-out episodes, for the DynaMo
encoder and for randomly initialised encoders of the same architecture (several seeds). With
`--plot PNG` it also plots the probe curves over pretraining.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from flax import nnx
from machine import machine_line

from robopolicy.data.collect import collect
from robopolicy.data.rlds_reader import load_episodes
from robopolicy.models.dynamo import make_encoder
from robopolicy.models.model_weights import WEIGHTS
from robopolicy.presets import COLLECT, PRETRAIN_DYNAMO
from robopolicy.train.dynamo_plots import plot_pretraining, read_log
from robopolicy.train.pretrain_dynamo import (
    ProbeSplit,
    dynamo_config_for,
    make_embedder,
    pretrain_dynamo,
    run_probes,
    split_episodes,
)


def _row(name: str, probe: dict) -> str:
    s, a = probe["state"], probe["action"]
    return f"| {name} | {s['linear']:.3f} | {s['knn']:.3f} | {a['linear']:.3f} | {a['knn']:.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="runs/dynamo_bench/dataset")
    parser.add_argument("--out", default="runs/bench_dynamo")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--random-seeds", type=int, default=3)
    parser.add_argument("--plot", default="")
    args = parser.parse_args()

    if not Path(args.dataset).exists():
        collect(dataclasses.replace(COLLECT["quickstart"], num_episodes=50, out=args.dataset))
    episodes = load_episodes(args.dataset)
    shutil.rmtree(args.out, ignore_errors=True)
    config = dataclasses.replace(
        PRETRAIN_DYNAMO["tiny"],
        dataset=args.dataset,
        out=args.out,
        steps=args.steps,
        checkpoint_every=args.steps,
    )
    result = pretrain_dynamo(config, episodes, progress=False)

    model_cfg = dynamo_config_for(episodes, config.model, args.dataset)
    train_eps, held_eps = split_episodes(episodes, config.holdout_fraction)
    probe_train = ProbeSplit.from_episodes(train_eps, model_cfg.cameras, config.probe_frames)
    probe_test = ProbeSplit.from_episodes(held_eps, model_cfg.cameras, config.probe_frames)
    random = []
    for seed in range(args.random_seeds):
        graphdef, params = nnx.split(make_encoder(model_cfg, rngs=nnx.Rngs(seed)), WEIGHTS)
        embed = make_embedder(graphdef, model_cfg.cameras)
        random.append(run_probes(embed, params, probe_train, probe_test, config.probe_ridge, config.probe_k))

    print("\n" + machine_line())
    print(
        f"{len(train_eps)} pretraining / {len(held_eps)} held-out episodes "
        f"({sum(len(e) for e in episodes)} steps); {args.steps} steps at batch {config.batch_size}, "
        f"window {model_cfg.window}: {result.steps_per_second:.2f} steps/s, "
        f"loss {result.losses[0][1]:.4f} (step {result.losses[0][0]}) → {result.final_loss:.4f}"
    )
    print("| encoder | state linear | state kNN | action linear | action kNN |")
    print("|---|---|---|---|---|")
    for seed, probe in enumerate(random):
        print(_row(f"random init, seed {seed}", probe))
    for p in result.evaluations:
        print(_row(f"DynaMo, step {p['step']}", p["probe"]))
    print(json.dumps({"probes": result.evaluations, "random": random}))
    if args.plot:
        losses, _ = read_log(Path(args.out) / "train_log.jsonl")
        plot_pretraining(
            losses,
            result.evaluations,
            args.plot,
            baselines={f"random init seed {i}": r for i, r in enumerate(random)},
        )
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
