"""The optimizer: AdamW after gradient-norm clipping (over all parameters, or per top-level module),
on a warmup-cosine or a constant schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import optax

SCHEDULES = ("warmup_cosine", "constant")
GRAD_CLIPS = ("global", "per_module")


@dataclass(frozen=True)
class OptimizerConfig:
    """AdamW hyperparameters. Defaults follow the Past-Token Prediction setup (lr 1e-4, β2 0.95, wd 1e-3).

    Attributes:
        learning_rate: peak learning rate, reached after the warm-up.
        b1, b2: Adam's moment decay rates.
        weight_decay: AdamW's decoupled weight decay.
        schedule: "warmup_cosine": linear warm-up from 0 to `learning_rate` over `warmup_steps`, then
            cosine decay to `final_lr_fraction` of it at the last step. "constant": the same warm-up,
            then `learning_rate` until the end (the DynaMo reference on LIBERO, with no warm-up).
        warmup_steps: steps of the linear warm-up (0: none).
        grad_clip_norm: clip gradients to this L2 norm before the update.
        grad_clip: "global": the norm over all parameters. "per_module": the norm of each top-level
            module's gradients separately (DynaMo's encoder, inverse and forward models, as the
            reference clips them one by one), so one module's large gradients do not shrink another's.
        final_lr_fraction: the learning rate at the last step, as a fraction of the peak (warmup_cosine).
    """

    learning_rate: float = 1e-4
    b1: float = 0.9
    b2: float = 0.95
    weight_decay: float = 1e-3
    schedule: Literal["warmup_cosine", "constant"] = "warmup_cosine"
    warmup_steps: int = 1000
    grad_clip_norm: float = 1.0
    grad_clip: Literal["global", "per_module"] = "global"
    final_lr_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.learning_rate <= 0:
            raise ValueError(f"OptimizerConfig: learning_rate must be > 0, got {self.learning_rate}")
        if not (0 <= self.b1 < 1 and 0 <= self.b2 < 1):
            raise ValueError(f"OptimizerConfig: betas must be in [0, 1), got ({self.b1}, {self.b2})")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"OptimizerConfig: schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.grad_clip not in GRAD_CLIPS:
            raise ValueError(
                f"OptimizerConfig: grad_clip must be one of {GRAD_CLIPS}, got {self.grad_clip!r}"
            )
        if self.warmup_steps < 0 or self.grad_clip_norm <= 0 or self.weight_decay < 0:
            raise ValueError(
                "OptimizerConfig: warmup_steps >= 0, grad_clip_norm > 0 and weight_decay >= 0 required"
            )


def learning_rate_schedule(config: OptimizerConfig, total_steps: int) -> optax.Schedule:
    """The learning rate of each step (0-based) of a `total_steps` run under `config.schedule`."""
    warmup = min(config.warmup_steps, max(total_steps - 1, 0))
    if config.schedule == "constant":
        if warmup == 0:
            return optax.constant_schedule(config.learning_rate)
        return optax.linear_schedule(0.0, config.learning_rate, warmup)  # holds its end value afterwards
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=config.learning_rate * config.final_lr_fraction,
    )


def clip_by_module_norm(max_norm: float) -> optax.GradientTransformation:
    """`optax.clip_by_global_norm` applied to each top-level subtree (module) of the updates alone."""

    def module(path: tuple[object, ...]) -> str:
        return jax.tree_util.keystr(path[:1])

    def update(updates: optax.Updates, state: optax.EmptyState, params: object = None) -> tuple:
        del params
        squares: dict[str, jax.Array] = {}
        for path, g in jax.tree_util.tree_leaves_with_path(updates):
            squares[module(path)] = squares.get(module(path), 0.0) + jnp.sum(jnp.square(g))
        scale = {k: jnp.minimum(1.0, max_norm / jnp.maximum(jnp.sqrt(v), 1e-30)) for k, v in squares.items()}
        clipped = jax.tree_util.tree_map_with_path(
            lambda path, g: (g * scale[module(path)]).astype(g.dtype), updates
        )
        return clipped, state

    return optax.GradientTransformation(lambda _params: optax.EmptyState(), update)


def make_optimizer(config: OptimizerConfig, total_steps: int) -> optax.GradientTransformation:
    clip = (
        optax.clip_by_global_norm(config.grad_clip_norm)
        if config.grad_clip == "global"
        else clip_by_module_norm(config.grad_clip_norm)
    )
    return optax.chain(
        clip,
        optax.adamw(
            learning_rate_schedule(config, total_steps),
            b1=config.b1,
            b2=config.b2,
            weight_decay=config.weight_decay,
        ),
    )
