"""The three-encoder experiment of #6: the same policy head on a frozen random-init encoder, on the
frozen DynaMo encoder, and on an encoder trained end to end.

Run: `PYTHONPATH=. python benchmarks/bench_dynamo_policy.py [--tasks A B] [--demos 20] ...`.
Collects `--demos` scripted demonstrations of each task (64×64 agentview + wrist) unless present,
holds the last `--heldout` episodes of each task out of every training, pretrains DynaMo (`tiny`
preset) on the rest, trains the same flow-policy head (the quickstart head, instruction-conditioned)
three times with the same steps and seed, then prints, for each encoder, the held-out probe MSE
(ridge and kNN, standardised units: 1.0 = predicting the training mean) to the robot state and to the
actions, and the success over fixed initial states of each task with 95 % Wilson intervals.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from flax import nnx
from machine import machine_line

from robopolicy.data.collect import CollectConfig, collect
from robopolicy.data.episode import Episode
from robopolicy.data.rlds_reader import load_episodes
from robopolicy.eval.eval_config import EvalConfig
from robopolicy.eval.stats import wilson_interval
from robopolicy.eval.stored_eval import evaluate_into_store
from robopolicy.models.dynamo import make_encoder
from robopolicy.models.policy import SHARED
from robopolicy.models.policy_presets import QUICKSTART
from robopolicy.presets import PRETRAIN_DYNAMO, TRAIN
from robopolicy.train.checkpoint import load_dynamo_encoder
from robopolicy.train.dynamo_plots import read_log
from robopolicy.train.loaded_policy import load_policy
from robopolicy.train.optimizer import OptimizerConfig
from robopolicy.train.pretrain_dynamo import ProbeSplit, make_embedder, pretrain_dynamo, run_probes
from robopolicy.train.train_logging import LogConfig
from robopolicy.train.trainer import train

ARMS = {  # name → (initialised from DynaMo, frozen)
    "frozen random init": (False, True),
    "frozen DynaMo": (True, True),
    "end to end": (False, False),
}


def _episodes(args: argparse.Namespace, out: Path) -> tuple[list[Episode], list[Episode]]:
    """(training episodes, held-out episodes), renumbered so that the held-out ones come last."""
    train_eps, held_eps = [], []
    for task in args.tasks:
        path = out / "data" / task
        if not path.exists():
            collect(
                CollectConfig(
                    task=task, num_episodes=args.demos, out=str(path), image_size=64, noise_std=0.1
                ),
                progress=False,
            )
        eps = sorted(load_episodes(path), key=lambda e: e.episode_id)
        train_eps += eps[: -args.heldout]
        held_eps += eps[-args.heldout :]
    ordered = [dataclasses.replace(e, episode_id=i) for i, e in enumerate(train_eps + held_eps)]
    return ordered[: len(train_eps)], ordered[len(train_eps) :]


def _success(db_run: object, tasks: list[str]) -> dict[str, tuple[int, int]]:
    episodes = db_run.episodes  # type: ignore[attr-defined]
    return {
        t: (sum(e["success"] for e in episodes if e["task"] == t), sum(e["task"] == t for e in episodes))
        for t in tasks
    }


def _rate(k: int, n: int) -> str:
    low, high = wilson_interval(k, n)
    return f"{k}/{n} ({100 * low:.0f}–{100 * high:.0f} %)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["object_red_cube", "object_blue_cube"])
    parser.add_argument("--demos", type=int, default=20)
    parser.add_argument("--heldout", type=int, default=4)
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--train-steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--init-states", default="0:10")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench_dynamo_policy")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument(
        "--reuse-dynamo",
        action="store_true",
        help="use the finished DynaMo run in OUT/dynamo (e.g. a link to another run's) instead of pretraining",
    )
    parser.add_argument(
        "--dynamics-features",
        default=PRETRAIN_DYNAMO["tiny"].model.dynamics_features,
        choices=["before_output_norm", "output"],
        help="which encoder features DynaMo's losses see (see DynamoConfig)",
    )
    args = parser.parse_args()
    out = Path(args.out)
    times: dict[str, float] = {}
    # Fresh runs every time (the collected demonstrations are kept): no resumed pretraining or policy.
    stale = ["results.db", *(name.replace(" ", "_") for name in ARMS)]
    for old in stale if args.reuse_dynamo else ["dynamo", *stale]:
        shutil.rmtree(out / old, ignore_errors=True)
        (out / old).unlink(missing_ok=True) if (out / old).is_file() else None

    t = time.perf_counter()
    train_eps, held_eps = _episodes(args, out)
    times["collect/load"] = time.perf_counter() - t

    t = time.perf_counter()
    everything = train_eps + held_eps
    pretrain = dataclasses.replace(
        PRETRAIN_DYNAMO["tiny"],
        dataset=str(out / "data"),
        out=str(out / "dynamo"),
        steps=args.pretrain_steps,
        checkpoint_every=args.pretrain_steps,
        probe_every=args.pretrain_steps,
        log=LogConfig(every=max(args.pretrain_steps // 20, 1)),
        holdout_fraction=len(held_eps) / len(everything),  # exactly our held-out episodes
        seed=args.seed,
        model=dataclasses.replace(PRETRAIN_DYNAMO["tiny"].model, dynamics_features=args.dynamics_features),
    )
    # Resuming a finished run only reads it back, so --reuse-dynamo costs no training.
    pretrain_dynamo(pretrain, everything, progress=False)
    dynamo_losses, _ = read_log(out / "dynamo" / "train_log.jsonl")
    dynamo_config, _ = load_dynamo_encoder(out / "dynamo")
    times["pretrain DynaMo"] = time.perf_counter() - t

    # vocab_size is a placeholder: training sets it from the instructions.
    head = dataclasses.replace(QUICKSTART, text="mean", vocab_size=2, **dynamo_config.policy_encoder_fields())
    runs = {}
    for name in args.arms:
        from_dynamo, frozen = ARMS[name]
        t = time.perf_counter()
        run = out / name.replace(" ", "_")
        config = dataclasses.replace(
            TRAIN["quickstart"],
            dataset=str(out / "data"),
            out=str(run),
            steps=args.train_steps,
            batch_size=args.batch_size,
            checkpoint_every=args.train_steps,
            log=LogConfig(every=max(args.train_steps // 10, 1)),
            seed=args.seed,
            policy=head,
            optimizer=OptimizerConfig(learning_rate=1e-3, warmup_steps=min(200, args.train_steps // 10)),
            encoder=str(out / "dynamo") if from_dynamo else "",
            freeze_encoder=frozen,
        )
        result = train(config, episodes=train_eps, progress=False)
        runs[name] = (run, result)
        times[f"train {name}"] = time.perf_counter() - t

    t = time.perf_counter()
    cameras = dynamo_config.cameras
    probe_train = ProbeSplit.from_episodes(train_eps, cameras, pretrain.probe_frames)
    probe_test = ProbeSplit.from_episodes(held_eps, cameras, pretrain.probe_frames)
    graphdef = nnx.graphdef(make_encoder(dynamo_config, rngs=nnx.Rngs(0)))
    embed = make_embedder(graphdef, cameras)
    probes = {}
    for name, (run, _) in runs.items():
        # The EMA encoder the evaluated policy uses (for the frozen arms, exactly its initial weights).
        params = load_policy(run).params["encoders"][SHARED]
        probes[name] = run_probes(
            embed, params, probe_train, probe_test, pretrain.probe_ridge, pretrain.probe_k
        )
    times["probes"] = time.perf_counter() - t

    t = time.perf_counter()
    success = {}
    for name, (run, _) in runs.items():
        _, evaluated = evaluate_into_store(
            EvalConfig(
                policy=str(run),
                tasks=tuple(args.tasks),
                init_states=args.init_states,
                db=str(out / "results.db"),
                video_episodes=0,
                seed=args.seed,
                # One process, episodes in sequence: the way the recorded results were run.
                backend="local",
                workers=0,
            )
        )
        success[name] = _success(evaluated, args.tasks)
    times["evaluate"] = time.perf_counter() - t

    print("\n" + machine_line())
    print(
        f"tasks {', '.join(args.tasks)}: {len(train_eps)} training / {len(held_eps)} held-out episodes "
        f"({sum(len(e) for e in train_eps)} training steps); DynaMo {args.pretrain_steps} steps "
        f"(loss {dynamo_losses[0]['loss']:.4f} → {dynamo_losses[-1]['loss']:.4f}); policies "
        f"{args.train_steps} steps at batch {args.batch_size}, seed {args.seed}; init states {args.init_states}; "
        f"DynaMo losses on {args.dynamics_features} features"
    )
    header = " | ".join(f"{t} success" for t in args.tasks)
    print(
        f"| encoder | state linear | state kNN | action linear | action kNN | held-out eff. rank "
        f"| final loss | {header} | all tasks |"
    )
    print("|---" * (8 + len(args.tasks)) + "|")
    for name, probe in probes.items():
        s, a = probe["state"], probe["action"]
        per_task = [_rate(*success[name][task]) for task in args.tasks]
        k = sum(v[0] for v in success[name].values())
        n = sum(v[1] for v in success[name].values())
        print(
            f"| {name} | {s['linear']:.3f} | {s['knn']:.3f} | {a['linear']:.3f} | {a['knn']:.3f} | "
            f"{probe['spread']['effective_rank']:.1f} | {runs[name][1].final_loss:.4f} | {' | '.join(per_task)} | {_rate(k, n)} |"
        )
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()))
    print(json.dumps({"probes": probes, "success": success, "seconds": times}))


if __name__ == "__main__":
    main()
