"""The one training loop, shared by policy training (`trainer.train`) and DynaMo pretraining
(`pretrain_dynamo.pretrain_dynamo`).

An `Objective` brings what differs: its initial parameters and loss, its batches, the metadata its
checkpoints carry, what a resumed run must agree with, and its periodic evaluation hooks. Everything
else happens here, once:

- the (data, fsdp) mesh over all devices of all hosts, with the train state sharded by `mesh.py`'s
  rules and the batch split over both axes;
- AdamW from `OptimizerConfig`, gradient clipping, frozen leaves, and an EMA of the weights when the
  objective keeps one;
- orbax checkpoints every `checkpoint_every` steps and at the last step, with the data-iterator state
  (or batches that are a pure function of the step), so a resumed run repeats the uninterrupted
  run's losses exactly; resuming starts from the newest intact checkpoint and sets damaged newer
  ones aside;
- logging (`train_logging.RunLogger`), the progress bar, and throughput that leaves out compilation
  and the hooks.

Only the first host writes logs and plots and runs hooks; orbax coordinates the hosts' checkpoint writes.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import grain
import jax
import jax.numpy as jnp
import optax
import orbax.checkpoint as ocp
from etils import epath
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from robopolicy.data.global_batch import batch_sharding, to_global_batch
from robopolicy.errors import UserError
from robopolicy.paths import storage_path
from robopolicy.train import checkpoint
from robopolicy.train.ema import EmaConfig, ema_decay, ema_update
from robopolicy.train.frozen_encoder import keep_frozen, masked_optimizer, stop_frozen_gradients
from robopolicy.train.loop_config import LoopConfig
from robopolicy.train.mesh import check_batch_size, make_mesh, state_shardings
from robopolicy.train.optimizer import learning_rate_schedule, make_optimizer
from robopolicy.train.train_logging import RunLogger

# (params, train state before the step, device batch, step key) → (scalar loss, more scalar metrics,
# new values of train-state entries that the forward pass computes, e.g. BatchNorm's running
# statistics; {} for none).
LossFn = Callable[
    [nnx.State, dict[str, Any], Any, jax.Array], tuple[jax.Array, dict[str, jax.Array], dict[str, Any]]
]
# (train state before the step, updated params) → new values of the objective's extra state entries.
ExtraUpdate = Callable[[dict[str, Any], nnx.State], dict[str, Any]]
TrainStep = Callable[[dict[str, Any], Any], tuple[dict[str, Any], dict[str, jax.Array]]]


@dataclass(frozen=True)
class Hook:
    """A periodic evaluation of the weights inference uses (`checkpoint.inference_weights`).

    `run(step, weights)` returns what is logged as an `eval` row at that step. Hooks run on the
    first host only, after the step's loss read-out and before its checkpoint, and their time is
    left out of the throughput.

    Attributes:
        run: (step, weights) → metrics (numbers, or dicts of them).
        every: steps between runs (0: only at the start or end).
        at_start: also before the first step of a new run (step 0).
        at_end: also after the last step.
    """

    run: Callable[[int, Any], Mapping[str, Any]]
    every: int = 0
    at_start: bool = False
    at_end: bool = False

    def due(self, done: int, steps: int) -> bool:
        return (self.every > 0 and done % self.every == 0) or (self.at_end and done == steps)


@dataclass(frozen=True)
class Objective:
    """What one kind of training brings to the loop.

    Attributes:
        name: the progress bar's label.
        params: the initial trainable parameters (an `nnx.Param` state).
        loss: the objective's loss, traced inside the jitted step (see `LossFn`).
        batch: step → this host's part of global batch `step` (numpy arrays, batch axis first).
        meta: JSON metadata every checkpoint carries; `meta["kind"]` tells runs apart.
        check_resume: (saved meta, run folder) → None; a UserError when the saved run cannot be
            continued with this objective (another model shape, say).
        data_iter: the grain iterator `batch` reads, saved with every checkpoint; None when `batch`
            is a pure function of the step.
        ema: keep an EMA of the weights (state entry `ema_params`) with these settings.
        frozen: a tree of bools like `params`: True leaves get no gradient and keep their values.
        extra_state: more train-state entries, e.g. DynaMo's EMA target encoder.
        update_extra: how the extra entries change after each update.
        hooks: periodic evaluations.
    """

    name: str
    params: nnx.State
    loss: LossFn
    batch: Callable[[int], Any]
    meta: dict[str, Any]
    check_resume: Callable[[dict[str, Any], epath.Path], None]
    data_iter: grain.DatasetIterator | None = None
    ema: EmaConfig | None = None
    frozen: Any = None
    extra_state: Mapping[str, Any] = field(default_factory=dict)
    update_extra: ExtraUpdate | None = None
    hooks: Sequence[Hook] = ()


@dataclass(frozen=True)
class RunResult:
    """A finished run. `evaluations` are the hooks' rows, `{"step": s, **metrics}`, first host only."""

    run_dir: epath.Path
    checkpoint_dir: epath.Path
    final_step: int
    final_loss: float
    steps_per_second: float
    losses: list[tuple[int, float]]
    evaluations: list[dict[str, Any]]


def training_mesh(config: LoopConfig) -> Mesh:
    """The (data, fsdp) mesh of `config.mesh` over all devices (joining the cluster first when
    `mesh.distributed` asks), with the batch size checked against it. Call this before anything
    touches a device."""
    try:
        mesh = make_mesh(config.mesh)
        check_batch_size(config.batch_size, mesh)
    except ValueError as e:
        raise UserError(f"--mesh: {e}") from e
    return mesh


def config_record(config: Any) -> dict[str, Any]:
    """A config dataclass as JSON-ready values, for checkpoint metadata and wandb."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def config_differences(old: dict[str, Any], new: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    """Keys whose values differ; a key an older run did not record counts as its default."""
    missing = object()

    def value(d: dict[str, Any], k: str) -> Any:
        v = d.get(k, defaults.get(k, missing))
        return "<absent>" if v is missing else json.dumps(v)

    return sorted(k for k in set(old) | set(new) if value(old, k) != value(new, k))


def check_same_config(
    saved: dict[str, Any], current: dict[str, Any], key: str, defaults: Any, run_dir: epath.Path, what: str
) -> None:
    """Resuming with another model shape would fail deep inside orbax; name the keys that differ."""
    old, new = saved.get(key, {}), current[key]
    known = config_record(defaults)
    differing = config_differences(old, new, known)
    if differing:
        details = ", ".join(f"{k}: {old.get(k, known.get(k))!r} → {new.get(k)!r}" for k in differing)
        raise UserError(f"{run_dir}: existing run has a different {what} ({details}); use a new --out")


def init_state(
    params: nnx.State,
    tx: optax.GradientTransformation,
    seed: int,
    ema: bool,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The train state: step, params, optimizer state, RNG key, the EMA of the params if kept, extras."""
    state = {
        "step": jnp.asarray(0, jnp.int32),
        "params": params,
        "opt_state": tx.init(params),
        "rng": jax.random.key_data(jax.random.key(seed + 1)),
        **(extra or {}),
    }
    if ema:
        state["ema_params"] = jax.tree.map(jnp.copy, params)
    return state


def make_step(
    loss: LossFn,
    tx: optax.GradientTransformation,
    ema: EmaConfig | None = None,
    frozen: Any = None,
    update_extra: ExtraUpdate | None = None,
    mesh: Mesh | None = None,
    shardings: Any = None,
) -> TrainStep:
    """A pure (state, batch) → (state, metrics) step, jitted with the state donated.

    `frozen` (a tree of bools like the params) marks leaves that get no gradient and keep their
    values; `tx` must then be the matching `masked_optimizer`. With a mesh, the state keeps
    `shardings` in and out (parameters FSDP-split, the rest replicated), the batch comes split over
    the data axes and the metrics come out replicated; XLA inserts the collectives.
    """

    def step(state: dict[str, Any], batch: Any) -> tuple[dict[str, Any], dict[str, jax.Array]]:
        key, step_key = jax.random.split(jax.random.wrap_key_data(state["rng"]))

        def loss_fn(params: nnx.State) -> tuple[jax.Array, tuple[dict[str, jax.Array], dict[str, Any]]]:
            if frozen is not None:
                params = stop_frozen_gradients(params, frozen)
            value, metrics, computed = loss(params, state, batch, step_key)
            return value, (metrics, computed)

        (value, (metrics, computed)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        new_state = {
            **state,
            **computed,
            "step": state["step"] + 1,
            "opt_state": opt_state,
            "rng": jax.random.key_data(key),
        }
        if ema is not None:
            decay = ema_decay(state["step"], ema.power, ema.max_decay)
            new_state["ema_params"] = ema_update(state["ema_params"], params, decay)
        if frozen is not None:
            params = keep_frozen(params, state["params"], frozen)
            if ema is not None:
                new_state["ema_params"] = keep_frozen(new_state["ema_params"], state["ema_params"], frozen)
        new_state["params"] = params
        if update_extra is not None:
            new_state.update(update_extra(state, params))
        return new_state, {**metrics, "loss": value, "grad_norm": optax.global_norm(grads)}

    if mesh is None:
        return jax.jit(step, donate_argnums=0)
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.jit(
        step,
        in_shardings=(shardings, batch_sharding(mesh)),
        out_shardings=(shardings, replicated),
        donate_argnums=0,
    )


def prepare_step(
    config: LoopConfig, mesh: Mesh, objective: Objective, abstract: bool = False
) -> tuple[dict[str, Any], TrainStep]:
    """The objective's initial train state, placed on the mesh by `state_shardings`, and the jitted
    step. With `abstract`, the state is only shapes and dtypes (`jax.ShapeDtypeStruct`s that carry
    their shardings, from `objective.params` that may be abstract too): enough to compile the step
    ahead without allocating anything (`robopolicy train --dry-run`)."""
    tx = make_optimizer(config.optimizer, config.steps)
    if objective.frozen is not None:
        tx = masked_optimizer(tx, objective.frozen)

    def initial(params: nnx.State) -> dict[str, Any]:
        return init_state(params, tx, config.seed, objective.ema is not None, objective.extra_state)

    state = jax.eval_shape(initial, objective.params) if abstract else initial(objective.params)
    shardings = state_shardings(state, mesh, config.mesh.min_shard_size)
    if abstract:
        state = jax.tree.map(
            lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), state, shardings
        )
    else:
        state = jax.device_put(state, shardings)
    step = make_step(
        objective.loss, tx, objective.ema, objective.frozen, objective.update_extra, mesh, shardings
    )
    return state, step


def run(config: LoopConfig, mesh: Mesh, objective: Objective, progress: bool = True) -> RunResult:
    """Train `objective` for `config.steps` steps; resumes from `config.out/checkpoints` when a
    checkpoint is there."""
    primary = jax.process_index() == 0
    run_dir = storage_path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    state, step_fn = prepare_step(config, mesh, objective)
    directory = run_dir / "checkpoints"
    start = _resume_step(directory, primary)
    # Before any host opens the folder with orbax (the first may have set damaged steps aside, or
    # spent a while on work of its own: loading evaluation hooks, say).
    _align_hosts("checkpoints checked")
    manager = checkpoint.checkpoint_manager(directory, config.keep_checkpoints, config.keep_period)
    lr_at = learning_rate_schedule(config.optimizer, config.steps)
    losses: list[tuple[int, float]] = []
    evaluations: list[dict[str, Any]] = []
    clock = _Clock(start)
    logger = bar = None
    try:
        if start:
            state = _restore(manager, start, run_dir, objective, state)
        logger = RunLogger(run_dir, config.log, start, config_record(config), primary)
        batch = to_global_batch(objective.batch(start), mesh)
        # Compiled ahead, then all hosts start together: a host that compiles longer (only the first
        # one writes the compilation cache; the first one also makes the loggers) would otherwise
        # keep the others waiting in the step's collectives, whose connections give up after 30 s
        # on CPUs.
        compiled_step = step_fn.lower(state, batch).compile()
        _align_hosts("first step")
        bar = tqdm(
            total=config.steps,
            initial=start,
            desc=objective.name,
            unit="step",
            disable=not (progress and primary),
            dynamic_ncols=True,
        )

        def run_hooks(done: int, hooks: list[Hook]) -> None:
            if not hooks:
                return
            t = time.perf_counter()
            weights = _host_copy(checkpoint.inference_weights(state, objective.meta)[1])
            if primary:
                for hook in hooks:
                    metrics = dict(hook.run(done, weights))
                    evaluations.append({"step": done, **metrics})
                    logger.log(done, metrics, kind="eval")
            _align_hosts(f"hooks of step {done}")  # the others wait here, not inside a collective
            clock.exclude(time.perf_counter() - t)

        if start == 0:
            run_hooks(0, [h for h in objective.hooks if h.at_start])
        for step in range(start, config.steps):
            if step > start:
                batch = to_global_batch(objective.batch(step), mesh)
            state, metrics = compiled_step(state, batch)
            done = step + 1
            if done % config.log.every == 0 or done == config.steps:
                values = {k: float(v) for k, v in metrics.items()}  # a device sync, hence not every step
                rate = clock.rate(done)
                losses.append((done, values["loss"]))
                logger.log(done, {**values, "lr": float(lr_at(step)), "steps_per_s": rate})
                bar.set_postfix(loss=f"{values['loss']:.4f}", steps_s=f"{rate:.2f}")
            if step == start:  # the first step compiles: the clock starts after it
                jax.block_until_ready(metrics["loss"])
                clock.begin(done)
            run_hooks(done, [h for h in objective.hooks if h.due(done, config.steps)])
            if done % config.checkpoint_every == 0 or done == config.steps:
                checkpoint.save(manager, done, state, objective.meta, objective.data_iter)
            bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if logger is not None:
            logger.close()
        manager.wait_until_finished()
        manager.close()
    return RunResult(
        run_dir=run_dir,
        checkpoint_dir=directory,
        final_step=config.steps,
        final_loss=losses[-1][1] if losses else float("nan"),
        steps_per_second=clock.overall(config.steps),
        losses=losses,
        evaluations=evaluations,
    )


class _Clock:
    """Steps per second, leaving out compilation (the first step of a process) and the hooks."""

    def __init__(self, start: int) -> None:
        self.t0 = self.last_time = time.perf_counter()
        self.timed_from = self.last_step = start
        self.excluded = self.last_excluded = 0.0

    def begin(self, done: int) -> None:
        self.t0 = self.last_time = time.perf_counter()
        self.timed_from = self.last_step = done
        self.excluded = self.last_excluded = 0.0

    def exclude(self, seconds: float) -> None:
        self.excluded += seconds

    def rate(self, done: int) -> float:
        """Steps per second since the previous call (or since the clock began)."""
        now = time.perf_counter()
        busy = now - self.last_time - (self.excluded - self.last_excluded)
        rate = (done - self.last_step) / max(busy, 1e-9)
        self.last_time, self.last_step, self.last_excluded = now, done, self.excluded
        return rate

    def overall(self, done: int) -> float:
        elapsed = time.perf_counter() - self.t0 - self.excluded
        steps = done - self.timed_from
        return steps / elapsed if steps > 0 and elapsed > 0 else float("nan")


def _resume_step(directory: epath.Path, primary: bool) -> int:
    """The step to resume from: the newest intact checkpoint's, 0 for a new run. Damaged newer
    checkpoints are moved aside with a warning naming the file; when none is intact, a UserError
    names the newest damaged file and nothing is moved."""
    step, damaged = checkpoint.newest_intact_step(directory)
    if step is None:
        if damaged:
            raise UserError(
                f"{damaged[0][1]}; no intact checkpoint to resume from: "
                "repair it, or start a new run with a new --out"
            )
        return 0
    for newer, problem in damaged:
        if primary:
            moved = checkpoint.set_aside(directory, newer)
            print(
                f"warning: {problem}; moved step {newer} to {moved}, resuming from step {step}",
                file=sys.stderr,
                flush=True,
            )
    return step


_BARRIERS = itertools.count()  # barrier names must not repeat within a process


def _align_hosts(name: str, timeout_s: int = 1800) -> None:
    """Wait until every host gets here (a barrier of the coordination service, not a collective:
    it waits up to `timeout_s`, while a collective's first connection gives up after 30 s on CPUs)."""
    if jax.process_count() > 1:
        ocp.multihost.sync_global_processes(
            f"robopolicy {next(_BARRIERS)}: {name}",
            timeout=timeout_s,
            processes=set(range(jax.process_count())),
        )


_KINDS = {None: "policy training", checkpoint.DYNAMO_KIND: "DynaMo pretraining"}


def _restore(
    manager: Any, step: int, run_dir: epath.Path, objective: Objective, state: dict[str, Any]
) -> dict[str, Any]:
    """The train state of checkpoint `step`, once its metadata says it is a run of this objective."""
    saved = checkpoint.restore_meta(manager, step)
    kind, saved_kind = objective.meta.get("kind"), saved.get("kind")
    if saved_kind != kind:
        raise UserError(
            f"{run_dir}: holds a {_KINDS.get(saved_kind, repr(saved_kind))} run, not "
            f"{_KINDS.get(kind, repr(kind))}; use a new --out"
        )
    objective.check_resume(saved, run_dir)
    return checkpoint.restore(manager, step, state, objective.data_iter)[0]


def _host_copy(tree: Any) -> Any:
    """The weights for a hook: as they are on one host; gathered to every host when the mesh spans
    several (a collective, so every host calls it, while only the first runs the hooks)."""
    if jax.process_count() == 1:
        return tree
    return multihost_utils.process_allgather(tree, tiled=True)
