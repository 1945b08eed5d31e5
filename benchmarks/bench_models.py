"""Speed of the policy models (#5): inference latency per action chunk and training steps/s.

Run: `python benchmarks/bench_models.py [--parts latency,train,stage2] [--steps 3]`.
Prints markdown tables for benchmarks/RESULTS.md. Every figure is timed after one warm-up call (which
compiles), over `--steps` calls, with `block_until_ready`.

- latency: one observation (batch 1), the `diffusion_policy` preset (ResNet-18 GN on 2 cameras at
  84×84, To=2, H=16, transformer 8 layers × 4 heads × 256-d) with past_steps=all so that
  self-verification applies; flow matching (Euler 10), DDIM 10, DDPM 100, and self-verification with
  N=16 candidates (DDIM 10) in one batched pass. Same parameters for all samplers (the head only
  changes the sampler; the network is the same).
- train: a jitted loss + grad + AdamW (clip, warmup-cosine) step of the `diffusion_policy` preset at
  batch 8 and 64.
- stage2: long context (To=16, H=32, PTP on all past tokens, DDPM loss): `ptp_stage2` on cached
  64-d embeddings vs `ptp_long_context` end to end through ResNet-18 (2 cameras × 16 frames per sample).
- precision: the same train step of the `quickstart` preset (small CNN, residual MLP, flow) at batch
  64 with compute_dtype float32 vs bfloat16 (`--precision-preset diffusion_policy` for the big one).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from machine import machine_line

from robopolicy.models.past_tokens import PAST_STEPS_ALL
from robopolicy.models.policy import Policy
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.models.policy_presets import POLICY_PRESETS
from robopolicy.train.optimizer import OptimizerConfig, make_optimizer


def policy_batch(cfg: PolicyConfig, b: int, seed: int = 0) -> dict:
    """A random training batch of `b` windows shaped for `cfg` (uint8 images, as the loader gives)."""
    rng = np.random.default_rng(seed)
    to, h, s = cfg.obs_horizon, cfg.action_horizon, cfg.image_size
    batch = {
        "state": jnp.asarray(rng.normal(size=(b, to, cfg.state_dim)), jnp.float32),
        "action": jnp.asarray(rng.uniform(-1, 1, size=(b, h, cfg.action_dim)), jnp.float32),
        "action_valid": jnp.ones((b, h), bool),
        "obs_valid": jnp.ones((b, to), bool),
    }
    if cfg.encoder == "cached":
        batch["embeddings"] = {
            c: jnp.asarray(rng.normal(size=(b, to, cfg.feature_dim)), jnp.float32) for c in cfg.cameras
        }
    else:
        batch["images"] = {
            c: jnp.asarray(rng.integers(0, 256, (b, to, s, s, 3), dtype=np.uint8)) for c in cfg.cameras
        }
    return batch


def _time(fn: Callable[[int], object], steps: int) -> tuple[float, float]:
    """(first call incl. compilation, mean seconds of the next `steps` calls)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(0))
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(steps):
        jax.block_until_ready(fn(i + 1))
    return first, (time.perf_counter() - t0) / steps


def latency(steps: int) -> None:
    base = dataclasses.replace(POLICY_PRESETS["diffusion_policy"], past_steps=PAST_STEPS_ALL)
    cfgs = {
        "flow matching, Euler 10": dataclasses.replace(base, head="flow", flow_steps=10),
        "DDIM 10": dataclasses.replace(base, diffusion_sampler="ddim", diffusion_inference_steps=10),
        "DDPM 100": dataclasses.replace(base, diffusion_sampler="ddpm", diffusion_inference_steps=100),
    }
    model = Policy(base, rngs=nnx.Rngs(0))
    params = nnx.state(model, nnx.Param)
    batch = policy_batch(base, 1)
    print("\n| sampler (batch 1) | ms per chunk | first call s |")
    print("|---|---|---|")
    for name, cfg in cfgs.items():
        graphdef = nnx.graphdef(nnx.eval_shape(lambda cfg=cfg: Policy(cfg, rngs=nnx.Rngs(0))))
        fn = jax.jit(lambda p, b, k, g=graphdef: nnx.merge(g, p).sample_batch(b, k))
        first, mean = _time(lambda i, fn=fn: fn(params, batch, jax.random.key(i)), steps)
        print(f"| {name} | {mean * 1e3:.1f} | {first:.1f} |", flush=True)
    sv = dataclasses.replace(cfgs["DDIM 10"], num_candidates=16)
    graphdef = nnx.graphdef(nnx.eval_shape(lambda: Policy(sv, rngs=nnx.Rngs(0))))
    history = jnp.zeros((1, sv.verification_history_length, sv.action_dim))  # (To−1)·stride actions
    executed = jnp.full((1,), sv.verification_history_length)  # a full history

    def verified(p: nnx.State, b: dict, k: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, p).sample_verified(b.get("images"), b["state"], k, history, executed)[0]

    fn = jax.jit(verified)
    first, mean = _time(lambda i: fn(params, batch, jax.random.key(i)), steps)
    print(f"| self-verification N=16 (DDIM 10) | {mean * 1e3:.1f} | {first:.1f} |", flush=True)


def train_runner(cfg: PolicyConfig, batch_size: int) -> Callable[[int], jax.Array]:
    """step(i) → loss: one jitted loss + grad + AdamW (clip, warmup-cosine) step with donated state,
    on a fixed random batch, with key i (the first call compiles)."""
    model = Policy(cfg, rngs=nnx.Rngs(0))
    graphdef, params = nnx.graphdef(model), nnx.state(model, nnx.Param)
    tx = make_optimizer(OptimizerConfig(), 100_000)
    state = {"params": params, "opt": tx.init(params)}
    batch = policy_batch(cfg, batch_size)

    def step(state: dict, batch: dict, key: jax.Array) -> tuple[dict, jax.Array]:
        loss, grads = jax.value_and_grad(lambda p: nnx.merge(graphdef, p).loss_batch(batch, key))(
            state["params"]
        )
        updates, opt = tx.update(grads, state["opt"], state["params"])
        return {"params": optax.apply_updates(state["params"], updates), "opt": opt}, loss

    fn = jax.jit(step, donate_argnums=0)
    holder = {"state": state}

    def run(i: int) -> jax.Array:
        holder["state"], loss = fn(holder["state"], batch, jax.random.key(i))
        return loss

    return run


def _train_rate(cfg: PolicyConfig, batch_size: int, steps: int) -> tuple[float, float]:
    """(steps/s, first step s) of `train_runner`'s step."""
    first, mean = _time(train_runner(cfg, batch_size), steps)
    return 1.0 / mean, first


def train(steps: int) -> None:
    cfg = POLICY_PRESETS["diffusion_policy"]
    print("\n| diffusion_policy preset, 2 cameras 84×84, To=2, H=16 | steps/s | samples/s | first step s |")
    print("|---|---|---|---|")
    for b in (8, 64):
        rate, first = _train_rate(cfg, b, steps)
        print(f"| batch {b} | {rate:.3f} | {rate * b:.1f} | {first:.1f} |", flush=True)


def stage2(steps: int) -> None:
    b = 8
    print(f"\n| long context To=16, H=32, batch {b} | steps/s | samples/s | first step s |")
    print("|---|---|---|---|")
    rates = {}
    for name in ("ptp_stage2", "ptp_long_context"):
        rate, first = _train_rate(POLICY_PRESETS[name], b, steps)
        rates[name] = rate
        print(f"| {name} | {rates[name]:.3f} | {rate * b:.1f} | {first:.1f} |", flush=True)
    print(f"\nstage 2 / end to end: {rates['ptp_stage2'] / rates['ptp_long_context']:.1f}×")


def precision(steps: int, preset: str = "quickstart", batch_size: int = 64) -> None:
    print(f"\n| `{preset}` preset, batch {batch_size} | steps/s | samples/s | first step s |")
    print("|---|---|---|---|")
    rates = {}
    for dtype in ("float32", "bfloat16"):
        cfg = dataclasses.replace(POLICY_PRESETS[preset], compute_dtype=dtype)
        rates[dtype], first = _train_rate(cfg, batch_size, steps)
        print(
            f"| compute_dtype {dtype} | {rates[dtype]:.3f} | {rates[dtype] * batch_size:.1f} | {first:.1f} |"
        )
    print(f"\nbfloat16 / float32: {rates['bfloat16'] / rates['float32']:.2f}×", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="latency,train,stage2")
    parser.add_argument("--steps", type=int, default=3, help="timed calls after the warm-up call")
    parser.add_argument(
        "--precision-preset", default="quickstart", help="policy preset of the precision part"
    )
    parser.add_argument("--precision-batch", type=int, default=64, help="batch size of the precision part")
    args = parser.parse_args()
    print(machine_line())
    parts = {
        "latency": latency,
        "train": train,
        "stage2": stage2,
        "precision": lambda steps: precision(steps, args.precision_preset, args.precision_batch),
    }
    for part in args.parts.split(","):
        parts[part](args.steps)


if __name__ == "__main__":
    main()
