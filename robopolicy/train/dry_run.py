"""`robopolicy train --dry-run`: what a run would hold in memory, before it allocates anything.

The model, the optimizer state and one global batch exist only as shapes (`jax.ShapeDtypeStruct`s
with the shardings the run would give them on its mesh); the training step is lowered and compiled
for them, as `loop.run` does before its first step, and XLA's memory analysis of the compiled step
gives the arguments, outputs and temporaries (activations) of one device. Nothing is read or written:
the dataset is not opened, so what a run takes from it comes from the policy config (state and action
dimensions, the vocabulary size), and the report says so. Users then pick FSDP, a smaller batch or
bfloat16 before a run runs out of memory.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from robopolicy.data.global_batch import batch_sharding
from robopolicy.models.policy import Policy
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train import loop
from robopolicy.train.frozen_encoder import frozen_mask
from robopolicy.train.mesh import DATA_AXIS, FSDP_AXIS
from robopolicy.train.pretrained_encoder import load_policy_encoder
from robopolicy.train.train_config import TrainConfig
from robopolicy.train.trainer import model_batch, policy_loss

PLACEHOLDER_VOCAB_SIZE = 64  # words of an instruction vocabulary a dry run assumes (ids 0, 1 reserved)


@dataclass(frozen=True)
class DryRunReport:
    """Sizes of a training run. Bytes; `per_device` is XLA's memory analysis of the compiled step
    (argument, output, alias, temp and generated-code bytes of one device), None where the backend
    gives none."""

    mesh: dict[str, int]
    platform: str
    batch_size: int
    parameters: int
    parameter_bytes: int
    optimizer_bytes: int
    state_bytes: int
    state_bytes_per_device: int
    per_device: dict[str, int] | None
    compile_seconds: float
    placeholders: tuple[str, ...]

    def lines(self) -> list[str]:
        mesh = " × ".join(f"{axis} {n}" for axis, n in self.mesh.items())
        out = [
            f"mesh: {mesh} ({self.platform}); global batch {self.batch_size}",
            f"parameters: {self.parameters:,} ({_size(self.parameter_bytes)})",
            f"optimizer state: {_size(self.optimizer_bytes)}",
            f"train state: {_size(self.state_bytes)} in all (parameters, optimizer, EMA), "
            f"{_size(self.state_bytes_per_device)} on the fullest device",
        ]
        if self.per_device is None:
            out.append("per device: no memory analysis on this backend")
        else:
            m = self.per_device
            out.append(
                f"per device (compiled step): arguments {_size(m['argument'])}, outputs {_size(m['output'])} "
                f"({_size(m['alias'])} of them reusing arguments), temporaries {_size(m['temp'])}, "
                f"code {_size(m['generated_code'])}; peak about {_size(peak_bytes(m))}"
            )
        out.append(f"compiled in {self.compile_seconds:.1f} s; no dataset read, no run folder written")
        out.extend(f"placeholder: {p}" for p in self.placeholders)
        return out


def peak_bytes(memory: dict[str, int]) -> int:
    """Bytes one device holds while the step runs: its arguments, the outputs that do not reuse an
    argument's buffer (donated state), and the temporaries (activations, gradients)."""
    return memory["argument"] + memory["output"] - memory["alias"] + memory["temp"]


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def dry_run_policy(config: TrainConfig) -> tuple[PolicyConfig, tuple[str, ...]]:
    """The policy a run of `config` would train, with what it would take from the dataset filled in
    from the config, and a note for each value so filled."""
    policy = config.policy
    notes = [
        f"state_dim {policy.state_dim} and action_dim {policy.action_dim} from the policy config "
        "(a run takes them from the dataset)"
    ]
    if config.encoder and policy.encoder != "cached":
        policy = load_policy_encoder(config.encoder).policy_config(policy)
    if policy.encoder == "cached":
        notes.append(
            f"feature_dim {policy.feature_dim} from the policy config (a run takes it from the cache)"
        )
    if policy.frame_stride == 0:  # chosen from episode lengths; no shape depends on it
        policy = dataclasses.replace(policy, frame_stride=1)
    if policy.text != "none" and policy.vocab_size == 0:
        policy = dataclasses.replace(policy, vocab_size=PLACEHOLDER_VOCAB_SIZE)
        notes.append(
            f"vocabulary of {PLACEHOLDER_VOCAB_SIZE} words (a run takes it from the dataset's instructions)"
        )
    return policy, tuple(notes)


def abstract_batch(config: TrainConfig, policy: PolicyConfig, mesh: jax.sharding.Mesh) -> dict[str, Any]:
    """One global training batch as shapes, split over the mesh's data axes as a run splits it."""
    b, to, h = config.batch_size, policy.obs_horizon, policy.action_horizon
    size = policy.image_size
    window = {
        "state": ((b, to, policy.state_dim), jnp.float32),
        "action": ((b, h, policy.action_dim), jnp.float32),
        "images": {cam: ((b, to, size, size, 3), jnp.uint8) for cam in policy.cameras},
        "embeddings": {cam: ((b, to, policy.feature_dim), jnp.float32) for cam in policy.cameras},
        "obs_valid": ((b, to), jnp.bool_),
        "action_valid": ((b, h), jnp.bool_),
        "instruction": ((b, config.data.instruction_length), jnp.int32),
    }
    sharding = batch_sharding(mesh)
    picked = model_batch(window, policy, config.mask_padded_actions)
    return jax.tree.map(
        lambda spec: jax.ShapeDtypeStruct(spec[0], spec[1], sharding=sharding),
        picked,
        is_leaf=lambda x: isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], tuple),
    )


def _bytes(tree: Any) -> int:
    return sum(int(np.prod(x.shape)) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree))


def _bytes_per_device(tree: Any) -> int:
    """Bytes of the fullest device when every leaf is laid out by its sharding."""
    per_device: dict[Any, int] = {}
    for leaf in jax.tree.leaves(tree):
        shard = int(np.prod(leaf.sharding.shard_shape(leaf.shape))) * jnp.dtype(leaf.dtype).itemsize
        for device in leaf.sharding.device_set:
            per_device[device] = per_device.get(device, 0) + shard
    return max(per_device.values(), default=0)


def dry_run(config: TrainConfig) -> DryRunReport:
    """Compile the training step of `config` for shapes only; the sizes it would use."""
    mesh = loop.training_mesh(config)
    policy, notes = dry_run_policy(config)
    model = nnx.eval_shape(lambda: Policy(policy, rngs=nnx.Rngs(config.seed)))
    params = nnx.state(model, nnx.Param)
    freeze = config.freeze_encoder and policy.encoder != "cached"
    batch = abstract_batch(config, policy, mesh)
    objective = loop.Objective(
        name="dry run",
        params=params,
        loss=policy_loss(nnx.graphdef(model), config.color_jitter),
        batch=lambda _step: batch,
        meta={},
        check_resume=lambda _saved, _run_dir: None,
        ema=config.ema,
        frozen=frozen_mask(params, True) if freeze else None,
    )
    state, step = loop.prepare_step(config, mesh, objective, abstract=True)
    t0 = time.perf_counter()
    compiled = step.lower(state, batch).compile()
    seconds = time.perf_counter() - t0
    analysis = compiled.memory_analysis()
    per_device = None
    if analysis is not None:
        per_device = {
            name: int(getattr(analysis, f"{name}_size_in_bytes"))
            for name in ("argument", "output", "alias", "temp", "generated_code")
        }
    return DryRunReport(
        mesh={DATA_AXIS: mesh.shape[DATA_AXIS], FSDP_AXIS: mesh.shape[FSDP_AXIS]},
        platform=f"{mesh.devices.size} {jax.default_backend()} device(s)",
        batch_size=config.batch_size,
        parameters=sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params)),
        parameter_bytes=_bytes(params),
        optimizer_bytes=_bytes(state["opt_state"]),
        state_bytes=_bytes(state),
        state_bytes_per_device=_bytes_per_device(state),
        per_device=per_device,
        compile_seconds=seconds,
        placeholders=notes,
    )
