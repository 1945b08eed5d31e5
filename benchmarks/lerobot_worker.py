"""LeRobot's side of benchmarks/bench_vs_lerobot.py; runs in the LeRobot venv, never in ours.

Reads one JSON request per line on stdin and answers one JSON line on stdout (anything LeRobot prints
goes to stderr). Requests, by "op":

- setup: build DiffusionPolicy from the shape fields (cameras, image_size, state_dim, action_dim,
  obs_horizon, horizon, down_dims, crop) → {"params", "torch", "lerobot", "threads"}.
- train: {"batch", "steps"} → per step; the first call per batch size is a warm-up.
- latency: {"steps", "inference_steps"} → per chunk: DDIM at batch 1, eval mode.
- encoder: {"frames", "steps"} → per call: one DiffusionRgbEncoder forward + backward.

Timed answers are {"seconds": [wall s per call], "cpu_seconds": [this process's CPU s per call]}.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from importlib.metadata import version

import torch
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy, DiffusionRgbEncoder


class _Clock:
    """Wall and process CPU seconds of each timed call."""

    def __init__(self) -> None:
        self.answer: dict[str, list[float]] = {"seconds": [], "cpu_seconds": []}

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.answer["seconds"].append(time.perf_counter() - wall)
        self.answer["cpu_seconds"].append(time.process_time() - cpu)


def _config(req: dict, **overrides) -> DiffusionConfig:
    s = req["image_size"]
    inputs = {"observation.state": PolicyFeature(FeatureType.STATE, (req["state_dim"],))}
    for i in range(req["cameras"]):
        inputs[f"observation.images.cam{i}"] = PolicyFeature(FeatureType.VISUAL, (3, s, s))
    crop = req.get("crop") or None
    return DiffusionConfig(
        input_features=inputs,
        output_features={"action": PolicyFeature(FeatureType.ACTION, (req["action_dim"],))},
        n_obs_steps=req["obs_horizon"],
        horizon=req["horizon"],
        n_action_steps=req["n_action_steps"],
        down_dims=tuple(req["down_dims"]),
        crop_shape=(crop, crop) if crop else None,
        device="cpu",
        **overrides,
    )


class Worker:
    def __init__(self) -> None:
        self.req: dict = {}
        self.policy: DiffusionPolicy | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.grad_clip_norm = 0.0
        self.batches: dict[int, dict] = {}
        self.encoder: DiffusionRgbEncoder | None = None
        self.sampler: DiffusionPolicy | None = None

    def setup(self, req: dict) -> dict:
        torch.manual_seed(0)
        self.req = req
        self.policy = DiffusionPolicy(_config(req))
        self.policy.train()
        # The optimizer LeRobot's training script builds for this policy (Adam, clipped at norm 10).
        preset = self.policy.config.get_optimizer_preset()
        self.optimizer = preset.build(self.policy.get_optim_params())
        self.grad_clip_norm = preset.grad_clip_norm
        params = sum(p.numel() for p in self.policy.parameters())
        return {
            "params": params,
            "torch": torch.__version__,
            "lerobot": version("lerobot"),
            "threads": torch.get_num_threads(),
        }

    def _batch(self, b: int) -> dict:
        if b not in self.batches:
            r, g = self.req, torch.Generator().manual_seed(b)
            to, s = r["obs_horizon"], r["image_size"]
            batch = {
                "observation.state": torch.randn(b, to, r["state_dim"], generator=g),
                "action": torch.rand(b, r["horizon"], r["action_dim"], generator=g) * 2 - 1,
                "action_is_pad": torch.zeros(b, r["horizon"], dtype=torch.bool),
            }
            for i in range(r["cameras"]):
                batch[f"observation.images.cam{i}"] = torch.randint(0, 256, (b, to, 3, s, s), generator=g).to(
                    torch.uint8
                )
            self.batches[b] = batch
        return self.batches[b]

    def train(self, req: dict) -> dict:
        assert self.policy is not None and self.optimizer is not None
        stored = self._batch(req["batch"])
        clock = _Clock()
        for _ in range(req["steps"]):
            with clock.call():
                # Images arrive as uint8, like ours; LeRobot's policy wants float in [0, 1].
                batch = {k: v.float() / 255 if v.dtype == torch.uint8 else v for k, v in stored.items()}
                loss, _ = self.policy.forward(batch)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.grad_clip_norm)
                self.optimizer.step()
                self.optimizer.zero_grad()
        return clock.answer

    def latency(self, req: dict) -> dict:
        if self.sampler is None:
            torch.manual_seed(0)
            self.sampler = DiffusionPolicy(
                _config(self.req, noise_scheduler_type="DDIM", num_inference_steps=req["inference_steps"])
            )
            self.sampler.eval()
        r = self.req
        to, s = r["obs_horizon"], r["image_size"]
        batch = {
            "observation.state": torch.randn(1, to, r["state_dim"]),
            # generate_actions takes the cameras stacked: [B, To, n_cameras, 3, H, W], float in [0, 1].
            "observation.images": torch.rand(1, to, r["cameras"], 3, s, s),
        }
        clock = _Clock()
        with torch.no_grad():
            for _ in range(req["steps"]):
                with clock.call():
                    self.sampler.diffusion.generate_actions(batch)
        return clock.answer

    def encoder_step(self, req: dict) -> dict:
        if self.encoder is None:
            torch.manual_seed(0)
            self.encoder = DiffusionRgbEncoder(_config(self.req))
            self.encoder.train()
        s = self.req["image_size"]
        x = torch.rand(req["frames"], 3, s, s)
        clock = _Clock()
        for _ in range(req["steps"]):
            with clock.call():
                self.encoder.zero_grad()
                (self.encoder(x) ** 2).sum().backward()
        return clock.answer


def main() -> None:
    worker = Worker()
    ops = {
        "setup": worker.setup,
        "train": worker.train,
        "latency": worker.latency,
        "encoder": worker.encoder_step,
    }
    out = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "quit":
            break
        # LeRobot logs and warns on stdout at times; keep stdout for the answers.
        with contextlib.redirect_stdout(sys.stderr):
            answer = ops[req["op"]](req)
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
