"""DynaMo pretraining: image windows → jitted latent-dynamics steps → orbax checkpoints, with probes.

The loop reads only camera frames for training. Every `probe_every` steps (and before the first and
after the last step) it embeds frames of training and held-out episodes with the current encoder and
fits linear (ridge) and kNN probes to the robot state and to the actions, scored on the held-out
episodes; probes are evaluation, so they may read state and actions. Each probe is a row of the
train log: {"step", "probe": {"state": {"linear", "knn"}, "action": {...}, "spread": {...}}}, and
`<run>/pretraining.png` is redrawn with the losses, probe curves and embedding spread so far.

Steps are data-parallel over all local devices (replicated state, batch split over a "data" mesh
axis); orbax saves and restores the arrays with their shardings.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import AxisType, NamedSharding, PartitionSpec
from jaxtyping import Float, UInt8
from tqdm.auto import tqdm

from robopolicy.data.episode import Episode
from robopolicy.data.image_windows import ImageWindowLoader
from robopolicy.data.rlds_reader import load_episodes
from robopolicy.errors import UserError
from robopolicy.eval.embedding_probes import probe_mse
from robopolicy.models.dynamo import DynaMo, embed_views
from robopolicy.models.dynamo_config import DynamoConfig
from robopolicy.models.dynamo_loss import target_ema_decay
from robopolicy.models.embedding_collapse import effective_rank, normalized_std
from robopolicy.train import checkpoint, dynamo_checkpoint
from robopolicy.train.dynamo_plots import plot_pretraining, read_log
from robopolicy.train.ema import ema_update
from robopolicy.train.pretrain_dynamo_config import PretrainDynamoConfig

_EMBED_CHUNK = 256  # frames per encoder call when embedding for the probes


@dataclass(frozen=True)
class PretrainResult:
    run_dir: Path
    checkpoint_dir: Path
    final_step: int
    final_loss: float
    steps_per_second: float
    losses: list[tuple[int, float]]
    probes: list[dict[str, Any]]


def dynamo_config_for(episodes: list[Episode], requested: DynamoConfig, where: str) -> DynamoConfig:
    """The requested config with the image size taken from the dataset (UserError on a missing camera)."""
    first = episodes[0]
    missing = [cam for cam in requested.cameras if cam not in first.frames]
    if missing:
        raise UserError(f"{where}: dataset has no camera {missing[0]!r} (it has {sorted(first.frames)})")
    try:
        return dataclasses.replace(requested, image_size=int(first.frames[requested.cameras[0]].shape[1]))
    except ValueError as e:
        raise UserError(f"{where}: {e}") from e


def split_episodes(episodes: list[Episode], holdout_fraction: float) -> tuple[list[Episode], list[Episode]]:
    """(pretraining episodes, held-out episodes): the held-out ones are the highest episode ids."""
    if len(episodes) < 2:
        raise UserError(f"need at least 2 episodes (one to hold out for the probes), got {len(episodes)}")
    ordered = sorted(episodes, key=lambda e: e.episode_id)
    held = min(max(1, round(holdout_fraction * len(ordered))), len(ordered) - 1)
    return ordered[:-held], ordered[-held:]


@dataclass(frozen=True)
class ProbeSplit:
    """Frames of some episodes with their ground truth, for the probes."""

    images: dict[str, UInt8[np.ndarray, "n h w 3"]]
    state: Float[np.ndarray, "n s"]
    action: Float[np.ndarray, "n a"]

    @classmethod
    def from_episodes(cls, episodes: list[Episode], cameras: tuple[str, ...], max_frames: int) -> ProbeSplit:
        """Every k-th frame of the episodes, k chosen so that at most `max_frames` remain."""
        total = sum(len(e) for e in episodes)
        stride = max(1, math.ceil(total / max_frames))
        cat = lambda arrays: np.concatenate(arrays)[::stride]  # noqa: E731
        return cls(
            images={cam: cat([e.frames[cam] for e in episodes]) for cam in cameras},
            state=cat([e.state for e in episodes]),
            action=cat([e.action for e in episodes]),
        )


def make_embedder(
    graphdef: nnx.GraphDef, cameras: tuple[str, ...]
) -> Callable[[nnx.State, dict[str, np.ndarray]], Float[np.ndarray, "n ve"]]:
    """(encoder params, {camera: uint8 [N, H, W, 3]}) → per-frame features, views concatenated [N, V·E]."""

    @jax.jit
    def embed_chunk(params: nnx.State, images: dict[str, jax.Array]) -> jax.Array:
        encoder = nnx.merge(graphdef, params)
        z = embed_views(encoder, {cam: images[cam][:, None] for cam in cameras}, cameras)
        return z.reshape(z.shape[0], -1)

    def embed(params: nnx.State, images: dict[str, np.ndarray]) -> np.ndarray:
        n = len(images[cameras[0]])
        chunks = []
        for lo in range(0, n, _EMBED_CHUNK):
            chunk = {cam: images[cam][lo : lo + _EMBED_CHUNK] for cam in cameras}
            pad = _EMBED_CHUNK - len(chunk[cameras[0]])  # one compiled shape for every chunk
            chunk = {cam: np.pad(a, [(0, pad)] + [(0, 0)] * 3) for cam, a in chunk.items()}
            chunks.append(np.asarray(embed_chunk(params, chunk))[: _EMBED_CHUNK - pad])
        return np.concatenate(chunks)

    return embed


def run_probes(
    embed: Callable[[nnx.State, dict[str, np.ndarray]], np.ndarray],
    params: nnx.State,
    train: ProbeSplit,
    test: ProbeSplit,
    ridge: float,
    k: int,
) -> dict[str, dict[str, float]]:
    """Held-out probe MSEs (standardised units; 1.0 = predicting the mean) for state and action,
    and the held-out embeddings' scale-free spread ({"normalized_std", "effective_rank"}, views
    concatenated)."""
    x_train, x_test = embed(params, train.images), embed(params, test.images)
    return {
        "state": probe_mse(x_train, train.state, x_test, test.state, ridge, k),
        "action": probe_mse(x_train, train.action, x_test, test.action, ridge, k),
        "spread": {
            "normalized_std": float(normalized_std(jnp.asarray(x_test))),
            "effective_rank": float(effective_rank(jnp.asarray(x_test))),
        },
    }


def data_parallel_shardings(batch_size: int) -> tuple[NamedSharding, NamedSharding]:
    """(replicated, batch-split) shardings over a 1-D mesh of all local devices.

    Parameters and optimizer state are replicated; each device takes batch_size / n windows and XLA
    inserts the cross-device means of the loss and gradients. On one device this is a no-op.
    """
    n = jax.device_count()
    if batch_size % n:
        raise UserError(f"batch_size {batch_size} is not divisible by the {n} devices")
    # Auto axes: jax 0.10's make_mesh defaults to Explicit, which this step is not written for.
    mesh = jax.make_mesh((n,), ("data",), axis_types=(AxisType.Auto,))
    return NamedSharding(mesh, PartitionSpec()), NamedSharding(mesh, PartitionSpec("data"))


def make_optimizer(config: PretrainDynamoConfig) -> optax.GradientTransformation:
    return optax.chain(
        optax.clip_by_global_norm(config.grad_clip_norm),
        optax.adamw(config.learning_rate, b1=config.b1, b2=config.b2, weight_decay=config.weight_decay),
    )


def init_state(model: DynaMo, tx: optax.GradientTransformation) -> dict[str, Any]:
    params = nnx.state(model, nnx.Param)
    state = {"step": jnp.asarray(0, jnp.int32), "params": params, "opt_state": tx.init(params)}
    if model.config.ema_target:
        state["target_params"] = jax.tree.map(jnp.copy, params["encoder"])
    return state


PretrainStep = Callable[[dict[str, Any], dict[str, Any]], tuple[dict[str, Any], dict[str, jax.Array]]]


def make_pretrain_step(
    graphdef: nnx.GraphDef,
    encoder_graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    config: DynamoConfig,
    total_steps: int,
) -> PretrainStep:
    """A pure (state, images) → (state, metrics) step, jitted with the state donated."""

    def pretrain_step(
        state: dict[str, Any], images: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, jax.Array]]:
        target_z = None
        if "target_params" in state:
            target = nnx.merge(encoder_graphdef, state["target_params"])
            before_norm = config.dynamics_features == "before_output_norm"
            target_z = jax.lax.stop_gradient(embed_views(target, images, config.cameras, before_norm))

        def loss_fn(params: nnx.State) -> tuple[jax.Array, dict[str, jax.Array]]:
            terms = nnx.merge(graphdef, params).losses(images, target_z)
            return terms["loss"], terms

        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        new_state = {"step": state["step"] + 1, "params": params, "opt_state": opt_state}
        if "target_params" in state:
            decay = target_ema_decay(state["step"], total_steps, config.ema_start)
            new_state["target_params"] = ema_update(state["target_params"], params["encoder"], decay)
        return new_state, {**metrics, "grad_norm": optax.global_norm(grads)}

    return jax.jit(pretrain_step, donate_argnums=0)


def pretrain_dynamo(
    config: PretrainDynamoConfig, episodes: list[Episode] | None = None, progress: bool = True
) -> PretrainResult:
    """Pretrain a DynaMo encoder; resumes from `config.out/checkpoints` when a checkpoint exists there."""
    if episodes is None:
        episodes = load_episodes(config.dataset, config.mapping)
    model_cfg = dynamo_config_for(episodes, config.model, config.dataset)
    train_eps, held_eps = split_episodes(episodes, config.holdout_fraction)
    loader = ImageWindowLoader(train_eps, model_cfg.cameras, model_cfg.window, config.batch_size, config.seed)
    probe_train = ProbeSplit.from_episodes(train_eps, model_cfg.cameras, config.probe_frames)
    probe_test = ProbeSplit.from_episodes(held_eps, model_cfg.cameras, config.probe_frames)

    model = DynaMo(model_cfg, rngs=nnx.Rngs(config.seed))
    graphdef, encoder_graphdef = nnx.graphdef(model), nnx.graphdef(model.encoder)
    tx = make_optimizer(config)
    replicated, batch_split = data_parallel_shardings(config.batch_size)
    state = jax.device_put(init_state(model, tx), replicated)
    del model

    run_dir = Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "kind": dynamo_checkpoint.KIND,
        "dynamo_config": dataclasses.asdict(model_cfg),
        "pretrain_config": json.loads(json.dumps(dataclasses.asdict(config), default=str)),
        "train_episode_ids": [e.episode_id for e in train_eps],
        "heldout_episode_ids": [e.episode_id for e in held_eps],
        "task": episodes[0].task,
    }
    manager = checkpoint.checkpoint_manager(run_dir / "checkpoints", config.keep_checkpoints)
    start = 0
    if manager.latest_step() is not None:
        start = int(manager.latest_step())
        _check_resume_compatible(checkpoint.restore_meta(manager, start), meta, run_dir)
        state, _ = checkpoint.restore(manager, start, state)
    log_path = run_dir / "train_log.jsonl"
    _truncate_log(log_path, start)

    step_fn = make_pretrain_step(graphdef, encoder_graphdef, tx, model_cfg, config.steps)
    embed = make_embedder(encoder_graphdef, model_cfg.cameras)
    losses: list[tuple[int, float]] = []
    probes: list[dict[str, Any]] = []
    log = log_path.open("a")

    probe_seconds = 0.0  # kept out of the throughput figure

    def probe(step: int) -> None:
        nonlocal probe_seconds
        t = time.perf_counter()
        params = state["params"]["encoder"]
        result = {
            "step": step,
            "probe": run_probes(embed, params, probe_train, probe_test, config.probe_ridge, config.probe_k),
        }
        probes.append(result)
        log.write(json.dumps(result) + "\n")
        log.flush()
        plot_pretraining(*read_log(log_path), run_dir / "pretraining.png")
        probe_seconds += time.perf_counter() - t

    if start == 0:
        probe(0)
    bar = tqdm(
        total=config.steps,
        initial=start,
        desc="pretrain dynamo",
        unit="step",
        disable=not progress,
        dynamic_ncols=True,
    )
    t0, timed_from = time.perf_counter(), start
    for step in range(start, config.steps):
        state, metrics = step_fn(state, jax.device_put(loader.batch(step), batch_split))
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            row = {"step": done, **{k: float(v) for k, v in metrics.items()}}
            losses.append((done, row["loss"]))
            log.write(json.dumps(row) + "\n")
            log.flush()
            bar.set_postfix(loss=f"{row['loss']:.4f}", cov=f"{row['covariance']:.2e}")
        # Probe before saving: a run that dies in between redoes the probe after resuming.
        if done == config.steps or (config.probe_every and done % config.probe_every == 0):
            probe(done)
        if done % config.checkpoint_every == 0 or done == config.steps:
            dynamo_checkpoint.save(manager, done, state, meta)
        bar.update(1)
        if step == start:  # leave compilation out of the throughput figure
            jax.block_until_ready(metrics["loss"])
            t0, timed_from, probe_seconds = time.perf_counter(), done, 0.0
    elapsed = time.perf_counter() - t0 - probe_seconds
    bar.close()
    log.close()
    manager.wait_until_finished()
    manager.close()
    timed_steps = config.steps - timed_from
    return PretrainResult(
        run_dir=run_dir,
        checkpoint_dir=run_dir / "checkpoints",
        final_step=config.steps,
        final_loss=losses[-1][1] if losses else float("nan"),
        steps_per_second=timed_steps / elapsed if timed_steps > 0 and elapsed > 0 else float("nan"),
        losses=losses,
        probes=probes,
    )


def _truncate_log(path: Path, step: int) -> None:
    """Drop log rows past the checkpoint a run resumes from: those steps are about to be redone."""
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in rows if json.loads(line).get("step", 0) <= step]
    if len(kept) != len(rows):
        path.write_text("".join(line + "\n" for line in kept))


def _check_resume_compatible(saved: dict[str, Any], current: dict[str, Any], run_dir: Path) -> None:
    """Resuming with another model shape would fail deep inside orbax; say which keys differ."""
    if saved.get("kind") != dynamo_checkpoint.KIND:
        raise UserError(f"{run_dir}: holds a run that is not DynaMo pretraining; use a new --out")
    old, new = saved.get("dynamo_config", {}), current["dynamo_config"]
    differing = sorted(k for k in set(old) | set(new) if json.dumps(old.get(k)) != json.dumps(new.get(k)))
    if differing:
        details = ", ".join(f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in differing)
        raise UserError(f"{run_dir}: existing run has a different DynaMo config ({details}); use a new --out")
