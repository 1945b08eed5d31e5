"""Named recipes of `robopolicy benchmark`: every choice of one row of the suite table.

A recipe is the collection, training and evaluation configs the benchmark runs, minus the paths and
the suite, which the benchmark fills in. Those three frozen configs are the single source of truth:
a recipe names demos per task, image size and cameras (collect), encoder, head, To/H, PTP, steps,
batch and optimizer (train) and the execution settings and evaluation seeds (eval); `describe`
prints the choices a table reader looks for first.

Recipes:
- `cpu`: sized for one suite in about an hour on a 2-core CPU, training included: the quickstart's
  flow policy (64² agent view + wrist, small CNN, To=1, H=16, 4 actions per chunk) conditioned on
  the instruction by attention over learned word embeddings, trained on 50 noisy demos per task.
- `cpu_diffusion`: the same with a DDPM head (100 training timesteps, DDIM 10 at inference).
- `cpu_long`, `cpu_ptp`: PTP's multistage recipe: a long-context head (To=8 frames spanning about
  half an episode, H=24, causal transformer, DDIM 10, one inference per 2 steps) on the cached
  embeddings of the `cpu` recipe's frozen encoder, without and with Past-Token Prediction on every
  past token; for the long and memory suites.
- `gpu`: Diffusion Policy's image setting (ResNet-18 GroupNorm + spatial softmax at 128², To=2,
  H=16, transformer DDPM head, DDIM 10), 100 demos per task, 50k steps at batch 64: for a GPU.
- `tiny`, `tiny_ptp`: a few demos, steps and episodes, to test the pipeline (end to end and
  multistage).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from robopolicy.data.collect import CollectConfig
from robopolicy.eval.eval_config import EvalConfig
from robopolicy.eval.execution import ExecutionSettings
from robopolicy.models.past_tokens import PAST_STEPS_ALL
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.models.policy_presets import POLICY_PRESETS, TINY_TRANSFORMER_DDIM
from robopolicy.train.optimizer import OptimizerConfig
from robopolicy.train.train_config import TrainConfig
from robopolicy.train.train_logging import LogConfig

# Fields the benchmark sets itself (paths, suite, task lists, parallelism): not part of a recipe's
# identity, so moving the output folder or using more workers keeps finished stages valid.
_NOT_HASHED = {
    # max_failures only decides whether a collection gives up: every collection that finishes keeps
    # the same demos (seeds are tried in order), whatever the limit.
    "collect": {"out", "suite", "tasks", "task", "workers", "max_failures"},
    "train": {"out", "dataset", "extra_datasets", "extra_mappings", "dataset_weights"},
    "eval": {"checkpoint", "out", "policy", "suite", "tasks", "task", "db", "backend", "num_envs", "workers"},
}


@dataclass(frozen=True)
class Recipe:
    """One benchmark protocol: what to collect, how to train, how to evaluate.

    Attributes:
        summary: one line for tables and `--help`.
        collect: demonstrations per task (`demos_per_task`), image size, cameras, action noise, seeds.
            Collection seeds are drawn from a stream disjoint from the fixed initial states.
        train: the policy (encoder, head, To/H, PTP, text conditioning), steps, batch, optimizer, EMA.
        eval: fixed initial states per task, sampling seeds, execution settings, env workers.
        encoder_recipe: PTP multistage: `train` is a head on per-frame embeddings (policy encoder
            "cached") of the image encoder that this other recipe trains on the same data (stage 1),
            which the benchmark trains first or reuses when done.
    """

    summary: str
    collect: CollectConfig
    train: TrainConfig
    eval: EvalConfig = field(default_factory=EvalConfig)
    encoder_recipe: str = ""

    def __post_init__(self) -> None:
        if not self.collect.demos_per_task:
            raise ValueError("Recipe: collect.demos_per_task must be set (demos of every task)")
        if self.train.policy.text == "none":
            raise ValueError("Recipe: a multi-task policy needs instruction conditioning (policy.text)")
        if bool(self.encoder_recipe) != (self.train.policy.encoder == "cached"):
            raise ValueError(
                "Recipe: a head on cached embeddings (encoder 'cached') needs encoder_recipe, and only it"
            )

    def stage_hashes(self, tasks: tuple[str, ...], encoder: str = "") -> dict[str, str]:
        """{stage: hash} for "data", "train" and "eval" on these tasks (`encoder`: the train hash of the
        encoder recipe's run); each covers its own config and the stages before it, so a change
        anywhere invalidates everything downstream of it."""
        data = _digest({"collect": _identity("collect", self.collect), "tasks": list(tasks)})
        train = _digest({"data": data, "train": _identity("train", self.train), "encoder": encoder})
        evaluation = _digest({"train": train, "eval": _identity("eval", self.eval)})
        return {"data": data, "train": train, "eval": evaluation}

    def describe(self) -> str:
        """The choices a reader of the table looks for first, in one line."""
        p = self.train.policy
        execution = self.eval.execution
        steps = execution.n_action_steps or p.n_action_steps
        head = (
            p.head if p.head == "flow" else f"{p.head} ({p.diffusion_sampler} {p.diffusion_inference_steps})"
        )
        ptp = (
            "PTP all past tokens"
            if p.past_steps == PAST_STEPS_ALL
            else f"PTP {p.past_steps}"
            if p.past_steps
            else "no PTP"
        )
        stride = "auto" if p.frame_stride == 0 else str(p.frame_stride)
        encoder = (
            f"the {self.encoder_recipe} recipe's frozen encoder"
            if self.encoder_recipe
            else f"{p.encoder} encoder"
        )
        return (
            f"{self.collect.demos_per_task} demos/task (noise {self.collect.noise_std}), "
            f"{p.image_size}² {'+'.join(p.cameras)}, {encoder}, {head} head with {p.denoiser} denoiser, "
            f"text {p.text}, To={p.obs_horizon} (stride {stride}) H={p.action_horizon}, {ptp}, "
            f"{self.train.steps} steps × batch {self.train.batch_size}, "
            f"{execution.mode} execution ({steps} actions/chunk), seeds {list(self.eval.seeds or (self.eval.seed,))}"
        )


def _identity(stage: str, config: Any) -> dict[str, Any]:
    d = dataclasses.asdict(config)
    if stage == "eval":
        # The execution settings' own identity: the one the results store keys episodes by, which
        # leaves out what does not change the executed actions.
        d["execution"] = config.execution.identity()
    return {k: v for k, v in d.items() if k not in _NOT_HASHED[stage]}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


_CPU_POLICY = dataclasses.replace(POLICY_PRESETS["quickstart"], text="attention")
_CPU_OPTIMIZER = OptimizerConfig(learning_rate=1e-3, warmup_steps=200, weight_decay=1e-3)
# With action noise some experts fail often (goal_open_door: 21 of its first 71 attempts at 0.1),
# so a task may skip up to 100 attempts; failures are counted in the data stage's stage.json.
_CPU_COLLECT = CollectConfig(demos_per_task=50, image_size=64, noise_std=0.1, max_failures=100)
_CPU_TRAIN = TrainConfig(
    steps=16_000, batch_size=32, checkpoint_every=4000, policy=_CPU_POLICY, optimizer=_CPU_OPTIMIZER
)
_CPU_EVAL = EvalConfig(init_states="0:50", seeds=(0,), video_episodes=2, num_envs=2)

# Long context on CPU, PTP's multistage way: a head on cached embeddings of the cpu recipe's encoder
# (end to end, 8 frames per sample would cost 8 times the encoder work). 8 frames spread over about
# half an episode (frame_stride 0: from the data), a causal transformer DDIM head as in PTP, H=24 from
# the oldest frame (17 future actions), 2 executed per inference.
_CPU_LONG_POLICY = dataclasses.replace(
    POLICY_PRESETS["ptp_stage2"],
    image_size=_CPU_POLICY.image_size,
    feature_dim=_CPU_POLICY.feature_dim,
    text="attention",
    obs_horizon=8,
    action_horizon=24,
    n_action_steps=2,
    past_steps=0,
    transformer_dim=128,
    transformer_layers=4,
    diffusion_sampler="ddim",
    diffusion_inference_steps=10,
)
_CPU_HEAD_TRAIN = dataclasses.replace(
    _CPU_TRAIN,
    steps=8000,
    policy=_CPU_LONG_POLICY,
    optimizer=OptimizerConfig(learning_rate=3e-4, warmup_steps=200, weight_decay=1e-3),
)

_GPU_POLICY = dataclasses.replace(POLICY_PRESETS["diffusion_policy"], image_size=128, text="attention")

_TINY_POLICY = PolicyConfig(
    image_size=32,
    encoder_channels=(8, 16),
    feature_dim=16,
    denoiser_width=64,
    denoiser_depth=1,
    text="mean",
    n_action_steps=4,
)

_TINY = Recipe(
    summary="a few demos, steps and episodes: tests the pipeline, not the method",
    collect=CollectConfig(demos_per_task=2, image_size=32, workers=1),
    train=TrainConfig(
        steps=4,
        batch_size=4,
        checkpoint_every=4,
        log=LogConfig(every=2),
        policy=_TINY_POLICY,
        optimizer=OptimizerConfig(warmup_steps=1),
    ),
    eval=EvalConfig(
        init_states="0:2",
        seeds=(0,),
        video_episodes=0,
        backend="local",
        workers=0,
        execution=ExecutionSettings(max_steps=15),
    ),
)

RECIPES: dict[str, Recipe] = {
    "cpu": Recipe(
        summary="flow, quickstart-size CNN at 64², instruction attention; one suite in about an hour on 2 CPU cores",
        collect=_CPU_COLLECT,
        train=_CPU_TRAIN,
        eval=_CPU_EVAL,
    ),
    "cpu_diffusion": Recipe(
        summary="the cpu recipe with a DDPM head (100 timesteps, DDIM 10 at inference)",
        collect=_CPU_COLLECT,
        train=dataclasses.replace(
            _CPU_TRAIN,
            policy=dataclasses.replace(_CPU_POLICY, head="diffusion", diffusion_sampler="ddim"),
        ),
        eval=_CPU_EVAL,
    ),
    "cpu_long": Recipe(
        summary="long-context head (To=8 over half an episode, H=24) on the cpu recipe's encoder, no PTP",
        collect=_CPU_COLLECT,
        train=_CPU_HEAD_TRAIN,
        eval=_CPU_EVAL,
        encoder_recipe="cpu",
    ),
    "cpu_ptp": Recipe(
        summary="the cpu_long head trained with Past-Token Prediction on every past token",
        collect=_CPU_COLLECT,
        train=dataclasses.replace(
            _CPU_HEAD_TRAIN, policy=dataclasses.replace(_CPU_LONG_POLICY, past_steps=PAST_STEPS_ALL)
        ),
        eval=_CPU_EVAL,
        encoder_recipe="cpu",
    ),
    "gpu": Recipe(
        summary="Diffusion Policy's image setting (ResNet-18 GN, 128², transformer DDPM, DDIM 10) for a GPU",
        collect=CollectConfig(demos_per_task=100, image_size=128, noise_std=0.1, max_failures=200),
        train=TrainConfig(
            steps=50_000,
            batch_size=64,
            checkpoint_every=10_000,
            policy=_GPU_POLICY,
            optimizer=OptimizerConfig(
                learning_rate=1e-4, b1=0.9, b2=0.95, weight_decay=1e-3, warmup_steps=1000
            ),
        ),
        eval=EvalConfig(init_states="0:50", seeds=(0,), video_episodes=2, num_envs=8),
    ),
    "tiny": _TINY,
    "tiny_ptp": Recipe(
        summary="a tiny PTP head on the tiny recipe's cached embeddings: tests the multistage path",
        collect=_TINY.collect,
        train=dataclasses.replace(
            _TINY.train,
            steps=2,
            checkpoint_every=2,
            policy=dataclasses.replace(
                _TINY_POLICY,
                encoder="cached",
                obs_horizon=3,
                action_horizon=6,
                n_action_steps=1,
                past_steps=PAST_STEPS_ALL,
                **TINY_TRANSFORMER_DDIM,
            ),
        ),
        eval=_TINY.eval,
        encoder_recipe="tiny",
    ),
}


def _check_encoder_recipes() -> None:
    for name, recipe in RECIPES.items():
        encoder = RECIPES.get(recipe.encoder_recipe) if recipe.encoder_recipe else None
        if recipe.encoder_recipe and (encoder is None or encoder.encoder_recipe):
            raise ValueError(
                f"recipe {name}: encoder_recipe {recipe.encoder_recipe!r} is not an end-to-end recipe"
            )
        if encoder is not None and encoder.collect != recipe.collect:
            raise ValueError(f"recipe {name}: its encoder recipe {recipe.encoder_recipe} collects other data")


_check_encoder_recipes()


def get_recipe(name: str) -> Recipe:
    """The named recipe; a ValueError naming the choices for an unknown one."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]
