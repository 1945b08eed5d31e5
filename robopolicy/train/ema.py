"""Exponential moving average of weights, with the warmup schedule Diffusion Policy uses.

decay(step) = min(max_decay, 1 − (1 + step)^(−power)): early on the average follows the weights
closely, later it averages over ~1/(1 − decay) steps. A fixed 0.9999 would make a few-thousand-step
CPU run evaluate mostly its random initialisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PyTree


@dataclass(frozen=True)
class EmaConfig:
    """The EMA of the weights that evaluation and export use.

    Attributes:
        power, max_decay: the average decays with min(1 − (1 + step)^−power, max_decay), as in
            Diffusion Policy.
    """

    power: float = 0.75
    max_decay: float = 0.9999

    def __post_init__(self) -> None:
        if not 0 < self.max_decay < 1 or self.power <= 0:
            raise ValueError(
                f"EmaConfig: need 0 < max_decay < 1 and power > 0, got {self.max_decay}, {self.power}"
            )


def ema_decay(step: Int[Array, ""] | int, power: float = 0.75, max_decay: float = 0.9999) -> Float[Array, ""]:
    step = jnp.asarray(step, jnp.float32)
    return jnp.clip(1.0 - (1.0 + step) ** (-power), 0.0, max_decay)


def ema_update(ema: PyTree, params: PyTree, decay: Float[Array, ""] | float) -> PyTree:
    """ema ← decay·ema + (1 − decay)·params, leaf by leaf."""
    return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)
