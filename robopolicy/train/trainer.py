"""The training loop: dataset → grain pipeline of normalized windows → jitted `Policy.loss_batch` steps
(flow or diffusion head, any preset) → orbax checkpoints (train state, data-iterator state,
normalization stats and vocabulary)."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from robopolicy.data.episode import Episode
from robopolicy.data.global_batch import batch_sharding, to_global_batch
from robopolicy.data.pipeline import batch_iterator
from robopolicy.errors import UserError
from robopolicy.models.augment import jitter_batch_images
from robopolicy.models.policy import Policy
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train import checkpoint
from robopolicy.train.ema import ema_decay, ema_update
from robopolicy.train.frozen_encoder import frozen_mask, keep_frozen, masked_optimizer, stop_frozen_gradients
from robopolicy.train.loaded_policy import policy_config_fields
from robopolicy.train.mesh import check_batch_size, make_mesh, state_shardings
from robopolicy.train.optimizer import learning_rate_schedule, make_optimizer
from robopolicy.train.train_config import TrainConfig
from robopolicy.train.train_logging import TrainLogger
from robopolicy.train.training_data import prepare_training_data


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    checkpoint_dir: Path
    final_step: int
    final_loss: float
    steps_per_second: float
    losses: list[tuple[int, float]]


def init_train_state(model: Policy, tx: optax.GradientTransformation, seed: int) -> dict[str, Any]:
    params = nnx.state(model, nnx.Param)
    return {
        "step": jnp.asarray(0, jnp.int32),
        "params": params,
        "ema_params": jax.tree.map(jnp.copy, params),
        "opt_state": tx.init(params),
        "rng": jax.random.key_data(jax.random.key(seed + 1)),
    }


TrainStep = Callable[[dict[str, Any], dict[str, Any]], tuple[dict[str, Any], dict[str, jax.Array]]]


def make_train_step(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    config: TrainConfig,
    mesh: Mesh | None = None,
    shardings: Any = None,
    frozen: Any = None,
) -> TrainStep:
    """A pure (state, batch) → (state, metrics) step, jitted with the state donated.

    `frozen` (a tree of bools like the params, from `frozen_mask`) marks leaves that get no gradient
    and keep their values; `tx` must then be the matching `masked_optimizer`.

    With a mesh, the state keeps `shardings` in and out (parameters FSDP-split, the rest
    replicated), the batch comes split over the data axes and the metrics come out replicated;
    XLA inserts the collectives.
    """

    def train_step(
        state: dict[str, Any], batch: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, jax.Array]]:
        key, step_key = jax.random.split(jax.random.wrap_key_data(state["rng"]))
        if (
            config.color_jitter.enabled and "images" in batch
        ):  # only then, so runs without jitter keep their random stream
            step_key, jitter_key = jax.random.split(step_key)
            batch = {**batch, "images": jitter_batch_images(batch["images"], jitter_key, config.color_jitter)}

        def loss_fn(params: nnx.State) -> jax.Array:
            if frozen is not None:
                params = stop_frozen_gradients(params, frozen)
            model = nnx.merge(graphdef, params)
            return model.loss_batch(batch, step_key)

        loss, grads = jax.value_and_grad(loss_fn)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        decay = ema_decay(state["step"], config.ema_power, config.ema_max_decay)
        ema_params = ema_update(state["ema_params"], params, decay)
        if frozen is not None:
            params = keep_frozen(params, state["params"], frozen)
            ema_params = keep_frozen(ema_params, state["ema_params"], frozen)
        new_state = {
            "step": state["step"] + 1,
            "params": params,
            "ema_params": ema_params,
            "opt_state": opt_state,
            "rng": jax.random.key_data(key),
        }
        return new_state, {"loss": loss, "grad_norm": optax.global_norm(grads)}

    if mesh is None:
        return jax.jit(train_step, donate_argnums=0)
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(
        train_step,
        in_shardings=(shardings, batch_sharding(mesh)),
        out_shardings=(shardings, replicated),
        donate_argnums=0,
    )


def _training_mesh(config: TrainConfig) -> Mesh:
    """The (data, fsdp) mesh of `config.mesh` over all devices, with the batch size checked against it."""
    try:
        mesh = make_mesh(dataclasses.replace(config.mesh, distributed=False))
        check_batch_size(config.batch_size, mesh)
    except ValueError as e:
        raise UserError(f"--mesh: {e}") from e
    return mesh


# (step, EMA params) → scalar metrics, e.g. the success rate of a few short rollouts.
EvalHook = Callable[[int, nnx.State], Mapping[str, float]]


def train(
    config: TrainConfig,
    episodes: list[Episode] | None = None,
    progress: bool = True,
    eval_hook: EvalHook | None = None,
) -> TrainResult:
    """Train a policy; resumes from `config.out/checkpoints` when a checkpoint exists there.

    `eval_hook`, if given, runs every `config.eval_every` steps on the current EMA weights; what it
    returns is logged under `eval/`. Without one, `eval_every` runs `eval_episodes` short rollouts.
    """
    if config.mesh.distributed and not jax.distributed.is_initialized():
        # Before anything touches a device: the cluster environment names the coordinator and this process.
        jax.distributed.initialize()
    mesh = _training_mesh(config)
    stage1: dict[str, Any] = {}
    data_config, pretrained = config, None
    if config.encoder and config.policy.encoder != "cached":
        from robopolicy.train.dynamo_checkpoint import load_policy_encoder

        pretrained = load_policy_encoder(config.encoder)
        data_config = dataclasses.replace(config, policy=pretrained.policy_config(config.policy))
    elif config.encoder:
        if episodes is not None:
            raise UserError(
                "--encoder: stage-2 training reads its embeddings from --dataset, not from memory"
            )
        from robopolicy.train.stage2 import embedding_episodes

        episodes, stage1 = embedding_episodes(config, progress)
    data = prepare_training_data(data_config, episodes)
    policy_cfg, stats = data.policy_config, data.stats
    data_iter = batch_iterator(data.batches, config.data.read_threads, config.data.prefetch)

    model = Policy(policy_cfg, rngs=nnx.Rngs(config.seed))
    if pretrained is not None:
        pretrained.install(model)
    graphdef = nnx.graphdef(model)
    freeze = config.freeze_encoder and policy_cfg.encoder != "cached"
    frozen = frozen_mask(nnx.state(model, nnx.Param), freeze) if freeze else None
    tx = make_optimizer(config.optimizer, config.steps)
    if frozen is not None:
        tx = masked_optimizer(tx, frozen)
    state = init_train_state(model, tx, config.seed)
    del model
    shardings = state_shardings(state, mesh, config.mesh.min_shard_size)
    state = jax.device_put(state, shardings)

    run_dir = Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        "policy_config": dataclasses.asdict(policy_cfg),
        "stats": stats.to_dict(),
        "dataset_stats": data.dataset_stats.to_dict(),
        "instruction_vocab": data.vocab.to_dict(),
        "train_config": json.loads(json.dumps(dataclasses.asdict(config), default=str)),
        "task": data.task,
        "instruction": data.instruction,
        "num_episodes": data.num_episodes,
        ENCODER_SOURCE_KEY: _encoder_source(config, pretrained, freeze, stage1),
        **stage1,
    }
    manager = checkpoint.checkpoint_manager(
        run_dir / "checkpoints", config.keep_checkpoints, config.keep_period
    )
    start = 0
    if manager.latest_step() is not None:
        start = int(manager.latest_step())
        _check_resume_compatible(checkpoint.restore_meta(manager, start), meta, run_dir)
        state, _ = checkpoint.restore(manager, start, state, data_iter)

    if eval_hook is None and config.eval_every and config.eval_episodes:
        from robopolicy.train.rollout_hook import rollout_eval_hook

        eval_hook = rollout_eval_hook(meta, run_dir, config.eval_episodes, config.eval_max_steps, config.seed)
    step_fn = make_train_step(graphdef, tx, config, mesh, shardings, frozen)
    lr_at = learning_rate_schedule(config.optimizer, config.steps)
    losses: list[tuple[int, float]] = []
    bar = tqdm(
        total=config.steps, initial=start, desc="train", unit="step", disable=not progress, dynamic_ncols=True
    )
    t0, timed_from = time.perf_counter(), start
    last_time, last_step = t0, start
    logger = TrainLogger(run_dir, config.wandb_project, meta["train_config"])
    try:
        for step in range(start, config.steps):
            window = next(data_iter)
            batch = to_global_batch(model_batch(window, policy_cfg, config.mask_padded_actions), mesh)
            state, metrics = step_fn(state, batch)
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                loss = float(metrics["loss"])  # a device sync, hence only every log_every steps
                now = time.perf_counter()
                rate = (done - last_step) / max(now - last_time, 1e-9)
                last_time, last_step = now, done
                losses.append((done, loss))
                logger.log(
                    done,
                    {
                        "loss": loss,
                        "grad_norm": float(metrics["grad_norm"]),
                        "lr": float(lr_at(step)),
                        "steps_per_s": rate,
                    },
                )
                bar.set_postfix(loss=f"{loss:.4f}", steps_s=f"{rate:.2f}")
            if eval_hook is not None and config.eval_every and done % config.eval_every == 0:
                logger.log(done, dict(eval_hook(done, state["ema_params"])), prefix="eval")
            if done % config.checkpoint_every == 0 or done == config.steps:
                checkpoint.save(manager, done, state, meta, data_iter)
            bar.update(1)
            if step == start:  # leave compilation out of the throughput figure
                jax.block_until_ready(metrics["loss"])
                t0, timed_from = time.perf_counter(), done
                last_time = t0
    finally:
        bar.close()
        logger.close()
        manager.wait_until_finished()
        manager.close()
    elapsed = time.perf_counter() - t0
    timed_steps = config.steps - timed_from
    return TrainResult(
        run_dir=run_dir,
        checkpoint_dir=run_dir / "checkpoints",
        final_step=config.steps,
        final_loss=losses[-1][1] if losses else float("nan"),
        steps_per_second=timed_steps / elapsed if timed_steps > 0 and elapsed > 0 else float("nan"),
        losses=losses,
    )


ENCODER_SOURCE_KEY = "encoder_source"  # meta key: where the image encoder's initial weights came from


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


def _config_differences(old: dict[str, Any], new: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    """Keys whose values differ; a key an older run did not record counts as its default."""
    missing = object()

    def value(d: dict[str, Any], k: str) -> Any:
        v = d.get(k, defaults.get(k, missing))
        return "<absent>" if v is missing else json.dumps(v)

    return sorted(k for k in set(old) | set(new) if value(old, k) != value(new, k))


def _check_resume_compatible(saved: dict[str, Any], current: dict[str, Any], run_dir: Path) -> None:
    """Resuming a run with another policy shape would fail deep inside orbax; say which keys differ."""
    old_source = saved.get(ENCODER_SOURCE_KEY, current[ENCODER_SOURCE_KEY])
    if old_source != current[ENCODER_SOURCE_KEY]:
        raise UserError(
            f"{run_dir}: existing run has another encoder source ({old_source}, now "
            f"{current[ENCODER_SOURCE_KEY]}); use a new --out"
        )
    # Read as loading does, so that a run from before the policy config held its frame stride keeps it.
    old, new = policy_config_fields(saved) if "policy_config" in saved else {}, current["policy_config"]
    defaults = json.loads(json.dumps(dataclasses.asdict(PolicyConfig())))
    differing = _config_differences(old, new, defaults)
    if differing:
        details = ", ".join(f"{k}: {old.get(k, defaults.get(k))!r} → {new.get(k)!r}" for k in differing)
        raise UserError(f"{run_dir}: existing run has a different policy config ({details}); use a new --out")
