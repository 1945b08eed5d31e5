"""Policy training: dataset → grain pipeline of normalized windows → `Policy.loss_batch` (flow or
diffusion head, any preset) in the shared training loop (`loop.py`), with the EMA weights, the
normalization statistics and the vocabulary in every checkpoint."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
from etils import epath
from flax import nnx

from robopolicy.data.episode import Episode
from robopolicy.data.pipeline import batch_iterator
from robopolicy.errors import UserError
from robopolicy.models.augment import ColorJitter, jitter_batch_images
from robopolicy.models.model_weights import WEIGHTS
from robopolicy.models.policy import Policy
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.paths import storage_path
from robopolicy.train import loop
from robopolicy.train.frozen_encoder import any_frozen, frozen_mask
from robopolicy.train.loaded_policy import policy_config_fields
from robopolicy.train.pretrained_encoder import load_policy_encoder
from robopolicy.train.stage2 import embedding_episodes
from robopolicy.train.train_config import TrainConfig
from robopolicy.train.training_data import prepare_training_data

# (step, EMA params) → scalar metrics, e.g. the success rate of a few short rollouts.
EvalHook = Callable[[int, nnx.State], Mapping[str, float]]
# (the run's checkpoint metadata, run folder) → the hook; called once, before the first step.
EvalHookFactory = Callable[[dict[str, Any], epath.Path], EvalHook]

ENCODER_SOURCE_KEY = "encoder_source"  # meta key: where the image encoder's initial weights came from


def train(
    config: TrainConfig,
    episodes: list[Episode] | None = None,
    progress: bool = True,
    make_eval_hook: EvalHookFactory | None = None,
) -> loop.RunResult:
    """Train a policy; resumes from `config.out/checkpoints` when a checkpoint exists there.

    `make_eval_hook`, if given, is called with the run's metadata (policy config, statistics, task)
    and run folder; the hook it returns runs every `config.eval_every` steps on the current EMA
    weights, and what it returns is logged under `eval/`. `robopolicy train` passes closed-loop
    rollouts (`robopolicy.eval.training_rollouts`).
    """
    if config.dry_run:
        raise UserError("train: config.dry_run is set; a dry run is robopolicy.train.dry_run.dry_run(config)")
    mesh = loop.training_mesh(config)  # first: it may join a cluster, before anything touches a device
    stage1: dict[str, Any] = {}
    data_config, pretrained = config, None
    if config.encoder and config.policy.encoder != "cached":
        pretrained = load_policy_encoder(config.encoder)
        data_config = dataclasses.replace(config, policy=pretrained.policy_config(config.policy))
    elif config.encoder:
        if episodes is not None:
            raise UserError(
                "--encoder: stage-2 training reads its embeddings from --dataset, not from memory"
            )
        episodes, stage1 = embedding_episodes(config, progress)
    data = prepare_training_data(data_config, episodes)
    policy_cfg = data.policy_config
    data_iter = batch_iterator(data.batches, config.data.read_threads, config.data.prefetch)

    model = Policy(policy_cfg, rngs=nnx.Rngs(config.seed))
    if pretrained is not None:
        pretrained.install(model)
    params = nnx.state(model, WEIGHTS)
    freeze = config.freeze_encoder and policy_cfg.encoder != "cached"
    frozen = frozen_mask(params, freeze)
    meta = {
        "policy_config": dataclasses.asdict(policy_cfg),
        "stats": data.stats.to_dict(),
        "dataset_stats": data.dataset_stats.to_dict(),
        "instruction_vocab": data.vocab.to_dict(),
        "train_config": loop.config_record(config),
        "task": data.task,
        "instruction": data.instruction,
        "num_episodes": data.num_episodes,
        "native_image_shapes": data.native_image_shapes,
        ENCODER_SOURCE_KEY: _encoder_source(config, pretrained, freeze, stage1),
        **stage1,
    }
    hooks = []
    if make_eval_hook is not None and config.eval_every:
        # Only the first host evaluates (it may build envs, load a stage-1 encoder, write files); the
        # others keep the same schedule, because the weights are gathered on every host for it.
        first_host = jax.process_index() == 0
        run = make_eval_hook(meta, storage_path(config.out)) if first_host else _first_host_only
        hooks.append(loop.Hook(run, every=config.eval_every))
    objective = loop.Objective(
        name="train",
        params=params,
        loss=policy_loss(nnx.graphdef(model), config.color_jitter),
        batch=lambda _step: model_batch(next(data_iter), policy_cfg, config.mask_padded_actions),
        meta=meta,
        check_resume=functools.partial(_check_resume_compatible, meta),
        data_iter=data_iter,
        ema=config.ema,
        frozen=frozen if any_frozen(frozen) else None,
        hooks=hooks,
    )
    del model
    return loop.run(config, mesh, objective, progress)


def policy_loss(graphdef: nnx.GraphDef, color_jitter: ColorJitter) -> loop.LossFn:
    """The loss of a `Policy` on a training batch, after on-device colour jitter of its images."""

    def loss(
        params: nnx.State, _state: dict[str, Any], batch: dict[str, Any], key: jax.Array
    ) -> tuple[jax.Array, dict[str, jax.Array], dict[str, Any]]:
        if color_jitter.enabled and "images" in batch:  # only then, so runs without keep their key stream
            key, jitter_key = jax.random.split(key)
            batch = {**batch, "images": jitter_batch_images(batch["images"], jitter_key, color_jitter)}
        return nnx.merge(graphdef, params).loss_batch(batch, key), {}, {}

    return loss


def _first_host_only(step: int, _weights: nnx.State) -> Mapping[str, float]:
    raise AssertionError(f"step {step}: evaluation hooks run on the first host only")


def _encoder_source(
    config: TrainConfig, pretrained: Any, frozen: bool, stage1: dict[str, Any]
) -> dict[str, Any]:
    """`{"kind": "random_init" | "dynamo" | "stage1_cache", "frozen": bool, "checkpoint": step folder}`."""
    if pretrained is not None:
        return {"kind": "dynamo", "checkpoint": pretrained.checkpoint, "frozen": frozen}
    if stage1:
        return {"kind": "stage1_cache", "checkpoint": config.encoder, "frozen": True}
    return {"kind": "random_init", "checkpoint": "", "frozen": frozen}


def model_batch(window: dict[str, Any], policy: PolicyConfig, mask_padded_actions: bool) -> dict[str, Any]:
    """The keys of a pipeline batch that the policy's loss reads; only these go to the device.

    `action_valid` is left out unless asked for: then actions padded past an episode's end are kept
    in the loss, as Diffusion Policy does (they teach the policy to stay put once done).
    """
    keys = ["state", "action"]
    keys.append("embeddings" if policy.encoder == "cached" else "images")
    if policy.denoiser == "transformer":
        keys.append("obs_valid")
    if policy.text != "none":
        keys.append("instruction")
    if mask_padded_actions:
        keys.append("action_valid")
    missing = [k for k in keys if k not in window]
    if missing:
        raise UserError(
            f"training batch has no {missing[0]!r} (keys: {sorted(window)}), needed by this policy"
        )
    return {k: window[k] for k in keys}


def _check_resume_compatible(current: dict[str, Any], saved: dict[str, Any], run_dir: epath.Path) -> None:
    """The saved run must have the same encoder source and policy shape as this one."""
    old_source = saved.get(ENCODER_SOURCE_KEY, current[ENCODER_SOURCE_KEY])
    if old_source != current[ENCODER_SOURCE_KEY]:
        raise UserError(
            f"{run_dir}: existing run has another encoder source ({old_source}, now "
            f"{current[ENCODER_SOURCE_KEY]}); use a new --out"
        )
    if "policy_config" in saved:
        # Read as loading does, so that a run from before the policy config held its frame stride keeps it.
        saved = {**saved, "policy_config": policy_config_fields(saved)}
    loop.check_same_config(saved, current, "policy_config", PolicyConfig(), run_dir, "policy config")
