"""DynaMo pretraining: image windows → latent-dynamics losses in the shared training loop (`loop.py`),
with held-out probes.

The objective reads only camera frames for training; its batches are a pure function of the step
(`ImageWindowLoader`), so a resumed run sees exactly the batches an uninterrupted one would. Before
the first step, every `probe_every` steps and after the last step, it embeds frames of training and
held-out episodes with the current encoder and fits linear (ridge) and kNN probes to the robot
state, to the objects' poses (when the dataset stores `observation/object_state`) and to the
actions, scored on the held-out episodes, with the reference's nearest-neighbour state distance;
probes are evaluation, so they may read state and actions. Each probe is an `eval` row of the train
log: {"step", "kind": "eval", "probe": {"state": {"linear", "knn", "nearest_neighbour"},
"object_state": {...}, "action": {"linear", "knn"}, "spread": {...}}}, and `<run>/pretraining.png` is
redrawn with the losses, probe curves and embedding spread so far.

DynaMo keeps no EMA of its weights: the paper probes and transplants the online encoder, and a second
copy of the encoder and both transformers would cost memory for weights nothing reads. Its optional
EMA *target* encoder (`model.ema_target`) is part of the objective and lives in the train state.

BatchNorm (the default "resnet18_avgpool" encoder): the loss runs the model in train mode, so each
step normalises with the statistics of its batch and returns the updated running statistics, which
live in the train state (`batch_stats`) and are checkpointed with the encoder; probes, embedding
caches and policies use the running statistics (eval mode). The step is jitted over the global
batch, sharded over the mesh's data axes, so the batch statistics are those of the global batch
(XLA inserts the all-reduce): PyTorch's SyncBatchNorm, which the reference turns on (`sync_bn`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath
from flax import nnx
from jaxtyping import Float, UInt8

from robopolicy.data.episode import Episode
from robopolicy.data.image_windows import ImageWindowLoader
from robopolicy.data.pipeline import HostShard
from robopolicy.data.rlds_reader import load_episodes
from robopolicy.errors import UserError
from robopolicy.models.dynamo import DynaMo, WindowImages, embed_views
from robopolicy.models.dynamo_config import DynamoConfig
from robopolicy.models.dynamo_loss import target_ema_decay
from robopolicy.models.embedding_collapse import effective_rank, normalized_std
from robopolicy.models.embedding_probes import nearest_neighbour_distance, probe_mse
from robopolicy.paths import storage_path
from robopolicy.train import loop
from robopolicy.train.checkpoint import DYNAMO_KIND
from robopolicy.train.dynamo_plots import plot_pretraining, read_log
from robopolicy.train.ema import ema_update
from robopolicy.train.pretrain_dynamo_config import PretrainDynamoConfig
from robopolicy.train.train_logging import LOG_FILE

_EMBED_CHUNK = 256  # frames per encoder call when embedding for the probes


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
    object_state: Float[np.ndarray, "n o"] | None  # None unless every episode has object poses

    @classmethod
    def from_episodes(cls, episodes: list[Episode], cameras: tuple[str, ...], max_frames: int) -> ProbeSplit:
        """Every k-th frame of the episodes, k chosen so that at most `max_frames` remain."""
        lengths = np.asarray([len(e) for e in episodes])
        stride = max(1, math.ceil(int(lengths.sum()) / max_frames))
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        # Every stride-th step of the episodes laid end to end, as (episode, step) pairs, so only the
        # chosen frames are decoded (frames read from disk are decoded on demand).
        picked = [
            (e, np.arange((-start) % stride, len(e), stride))
            for e, start in zip(episodes, starts, strict=True)
        ]
        picked = [(e, steps) for e, steps in picked if len(steps)]
        return cls(
            images={cam: np.concatenate([e.frames[cam][steps] for e, steps in picked]) for cam in cameras},
            state=np.concatenate([e.state[steps] for e, steps in picked]),
            action=np.concatenate([e.action[steps] for e, steps in picked]),
            object_state=(
                np.concatenate([e.object_state[steps] for e, steps in picked])
                if all(e.object_state is not None for e, _ in picked)
                else None
            ),
        )


def make_embedder(
    graphdef: nnx.GraphDef, cameras: tuple[str, ...]
) -> Callable[[nnx.State, dict[str, np.ndarray]], Float[np.ndarray, "n ve"]]:
    """(encoder weights: parameters and running statistics, {camera: uint8 [N, H, W, 3]}) →
    per-frame features, views concatenated [N, V·E]."""

    @jax.jit
    def embed_chunk(params: nnx.State, images: dict[str, jax.Array]) -> jax.Array:
        encoder = nnx.merge(graphdef, params)
        z = embed_views(encoder, {cam: images[cam][:, None] for cam in cameras}, cameras)  # eval mode
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
    """Held-out probes of the robot state, the action and, when both splits have them, the objects'
    poses: {"linear", "knn"} MSEs (standardised units; 1.0 = predicting the mean) and, for the two
    states, the "nearest_neighbour" distance; and the held-out embeddings' scale-free spread
    ({"normalized_std", "effective_rank"}, views concatenated)."""
    x_train, x_test = embed(params, train.images), embed(params, test.images)

    def states(y_train: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
        return {
            **probe_mse(x_train, y_train, x_test, y_test, ridge, k),
            "nearest_neighbour": nearest_neighbour_distance(x_train, y_train, x_test, y_test),
        }

    objects = (
        {"object_state": states(train.object_state, test.object_state)}
        if train.object_state is not None and test.object_state is not None
        else {}
    )
    return {
        "state": states(train.state, test.state),
        **objects,
        "action": probe_mse(x_train, train.action, x_test, test.action, ridge, k),
        "spread": {
            "normalized_std": float(normalized_std(jnp.asarray(x_test))),
            "effective_rank": float(effective_rank(jnp.asarray(x_test))),
        },
    }


def dynamo_loss(graphdef: nnx.GraphDef, encoder_graphdef: nnx.GraphDef, config: DynamoConfig) -> loop.LossFn:
    """The DynaMo loss of a batch of windows, its terms and collapse measures as metrics, and the
    updated BatchNorm running statistics (when the encoder has any). BatchNorm runs in train mode;
    targets come from the EMA target encoder in the train state when the model has one."""
    before_norm = config.dynamics_features == "before_output_norm"

    def loss(
        params: nnx.State, state: dict[str, Any], images: WindowImages, key: jax.Array
    ) -> tuple[jax.Array, dict[str, jax.Array], dict[str, Any]]:
        stats = state.get("batch_stats", nnx.State({}))
        target_z = None
        if "target_params" in state:
            encoder_stats = stats["encoder"] if "encoder" in stats else nnx.State({})
            target = _train_mode(
                nnx.merge(encoder_graphdef, state["target_params"], encoder_stats, copy=True)
            )
            target_z = jax.lax.stop_gradient(embed_views(target, images, config.cameras, before_norm))
        # copy=True: new Variables in this trace; the train state's own are read-only here.
        model = _train_mode(nnx.merge(graphdef, params, stats, copy=True))
        terms = model.losses(images, target_z, key)
        computed = {"batch_stats": nnx.state(model, nnx.BatchStat)} if "batch_stats" in state else {}
        return terms["loss"], terms, computed

    return loss


def _train_mode(module: nnx.Module) -> nnx.Module:
    """`module` with its BatchNorm layers (if any) normalising with, and updating from, the batch."""
    return nnx.view(module, use_running_average=False, raise_if_not_found=False)


def target_update(config: DynamoConfig, total_steps: int) -> loop.ExtraUpdate:
    """The EMA target encoder follows the updated online encoder, its decay annealed towards 1."""

    def update(state: dict[str, Any], params: nnx.State) -> dict[str, Any]:
        decay = target_ema_decay(state["step"], total_steps, config.ema_start)
        return {"target_params": ema_update(state["target_params"], params["encoder"], decay)}

    return update


def host_batches(loader: ImageWindowLoader) -> Callable[[int], dict[str, np.ndarray]]:
    """step → this host's rows of the step's global batch (all of it on a single host)."""
    shard = HostShard.current()

    def batch(step: int) -> dict[str, np.ndarray]:
        images = loader.batch(step)
        if shard.count == 1:
            return images
        rows = shard.rows(len(next(iter(images.values()))))
        return {cam: x[rows] for cam, x in images.items()}

    return batch


def pretrain_dynamo(
    config: PretrainDynamoConfig, episodes: list[Episode] | None = None, progress: bool = True
) -> loop.RunResult:
    """Pretrain a DynaMo encoder; resumes from `config.out/checkpoints` when a checkpoint exists there.

    The probe results are the run's `evaluations`: `{"step", "probe": {...}}`.
    """
    mesh = loop.training_mesh(config)  # first: it may join a cluster, before anything touches a device
    if episodes is None:
        episodes = load_episodes(config.dataset, config.mapping)
    model_cfg = dynamo_config_for(episodes, config.model, config.dataset)
    train_eps, held_eps = split_episodes(episodes, config.holdout_fraction)
    loader = ImageWindowLoader(train_eps, model_cfg.cameras, model_cfg.window, config.batch_size, config.seed)
    config = dataclasses.replace(config, steps=config.total_steps(len(loader)))
    probe_train = ProbeSplit.from_episodes(train_eps, model_cfg.cameras, config.probe_frames)
    probe_test = ProbeSplit.from_episodes(held_eps, model_cfg.cameras, config.probe_frames)

    model = DynaMo(model_cfg, rngs=nnx.Rngs(config.seed))
    graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    encoder_graphdef = nnx.graphdef(model.encoder)
    del model
    run_dir = storage_path(config.out)
    embed = make_embedder(encoder_graphdef, model_cfg.cameras)

    def probe(step: int, encoder_params: nnx.State) -> dict[str, Any]:
        result = run_probes(
            embed, encoder_params, probe_train, probe_test, config.probe_ridge, config.probe_k
        )
        loss_rows, probe_rows = read_log(run_dir / LOG_FILE)  # this row is logged after the hook returns
        plot_pretraining(
            loss_rows, [*probe_rows, {"step": step, "probe": result}], run_dir / "pretraining.png"
        )
        return {"probe": result}

    meta = {
        "kind": DYNAMO_KIND,
        "dynamo_config": dataclasses.asdict(model_cfg),
        "pretrain_config": loop.config_record(config),
        "train_episode_ids": [e.episode_id for e in train_eps],
        "heldout_episode_ids": [e.episode_id for e in held_eps],
        "task": episodes[0].task,
    }
    objective = loop.Objective(
        name="pretrain dynamo",
        params=params,
        loss=dynamo_loss(graphdef, encoder_graphdef, model_cfg),
        batch=host_batches(loader),
        meta=meta,
        check_resume=functools.partial(_check_resume_compatible, meta),
        extra_state={
            **({"batch_stats": batch_stats} if jax.tree.leaves(batch_stats) else {}),
            **({"target_params": jax.tree.map(jnp.copy, params["encoder"])} if model_cfg.ema_target else {}),
        },
        update_extra=target_update(model_cfg, config.steps) if model_cfg.ema_target else None,
        hooks=[loop.Hook(probe, every=config.probe_every, at_start=True, at_end=True)],
    )
    return loop.run(config, mesh, objective, progress)


def _check_resume_compatible(current: dict[str, Any], saved: dict[str, Any], run_dir: epath.Path) -> None:
    loop.check_same_config(saved, current, "dynamo_config", DynamoConfig(), run_dir, "DynaMo config")
