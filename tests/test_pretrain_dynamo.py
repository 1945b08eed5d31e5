"""DynaMo pretraining: the loader never reads actions, runs resume exactly, a policy takes the encoder."""

import dataclasses
import json
import shutil

import jax
import numpy as np
import pytest
from flax import nnx

from robopolicy.cli import main
from robopolicy.data.episode import Episode
from robopolicy.data.image_windows import ImageWindowLoader
from robopolicy.errors import UserError
from robopolicy.models.dynamo_config import DynamoConfig
from robopolicy.models.model_weights import WEIGHTS
from robopolicy.models.policy import SHARED, Policy
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train.checkpoint import load_dynamo_encoder
from robopolicy.train.frozen_encoder import frozen_mask
from robopolicy.train.loaded_policy import load_policy
from robopolicy.train.pretrain_dynamo import pretrain_dynamo
from robopolicy.train.pretrain_dynamo_config import DYNAMO_OPTIMIZER, PretrainDynamoConfig
from robopolicy.train.pretrained_encoder import (
    install_encoder,
    load_encoder_module,
    policy_config_with_encoder,
)
from robopolicy.train.train_config import TrainConfig
from robopolicy.train.train_logging import LogConfig
from robopolicy.train.trainer import train

CAMERAS = ("agentview", "wrist")
MODEL = DynamoConfig(
    encoder="cnn",
    encoder_channels=(4, 8),
    feature_dim=8,
    window=3,
    latent_dim=4,
    transformer_dim=8,
    transformer_layers=1,
    transformer_heads=2,
)


def _episodes(n: int = 4, steps: int = 10, objects: bool = False) -> list[Episode]:
    rng = np.random.default_rng(0)
    return [
        Episode(
            frames={c: rng.integers(0, 256, (steps, 16, 16, 3), dtype=np.uint8) for c in CAMERAS},
            state=rng.normal(size=(steps, 9)).astype(np.float32),
            action=rng.uniform(-1, 1, size=(steps, 7)).astype(np.float32),
            reward=np.zeros(steps, np.float32),
            task="cube_on_plate",
            instruction="put the red cube on the plate",
            episode_id=i,
            object_state=rng.normal(size=(steps, 14)).astype(np.float32) if objects else None,
        )
        for i in range(n)
    ]


class _FramesOnly:
    """An episode whose every field but `frames` and `episode_id` fails the test when read."""

    def __init__(self, episode: Episode) -> None:
        self.frames, self.episode_id = episode.frames, episode.episode_id

    def __getattr__(self, name: str):
        raise AssertionError(f"the pretraining loader read {name!r}")


def test_loader_never_reads_actions():
    episodes = _episodes()
    loader = ImageWindowLoader([_FramesOnly(e) for e in episodes], CAMERAS, window=3, batch_size=4, seed=0)
    assert len(loader) == 4 * (10 - 3 + 1)
    batch = loader.batch(5)
    assert set(batch) == set(CAMERAS)
    assert batch["wrist"].shape == (4, 3, 16, 16, 3) and batch["wrist"].dtype == np.uint8
    # Windows are consecutive frames of one episode.
    frames = np.concatenate([e.frames["agentview"] for e in episodes])
    starts = [int(np.flatnonzero((frames == w[0]).all(axis=(1, 2, 3)))[0]) for w in batch["agentview"]]
    for start, window in zip(starts, batch["agentview"], strict=True):
        np.testing.assert_array_equal(window, frames[start : start + 3])
        assert start // 10 == (start + 2) // 10


def test_loader_names_a_missing_camera():
    with pytest.raises(UserError, match=r"episode 0: no camera 'top'"):
        ImageWindowLoader(_episodes(), ("top",), window=3, batch_size=4, seed=0)


def _config(out, **overrides) -> PretrainDynamoConfig:
    base = {
        "out": str(out),
        "steps": 4,
        "batch_size": 4,
        "checkpoint_every": 2,
        "keep_checkpoints": 5,
        "log": LogConfig(every=1),
        "probe_every": 2,
        "holdout_fraction": 0.25,
        "optimizer": dataclasses.replace(DYNAMO_OPTIMIZER, learning_rate=1e-3),
        "model": MODEL,
    }
    return PretrainDynamoConfig(**{**base, **overrides})


def test_resume_reproduces_uninterrupted_run_and_policy_takes_the_encoder(tmp_path):
    episodes = _episodes()
    config = _config(tmp_path / "a")
    full = pretrain_dynamo(config, episodes, progress=False)
    assert [s for s, _ in full.losses] == [1, 2, 3, 4]
    assert [p["step"] for p in full.evaluations] == [0, 2, 4]
    assert set(full.evaluations[-1]["probe"]) == {"state", "action", "spread"}
    spread = full.evaluations[-1]["probe"]["spread"]
    assert (tmp_path / "a" / "pretraining.png").stat().st_size > 10_000
    assert spread["effective_rank"] >= 1.0 and spread["normalized_std"] > 0.0

    # A copy of the run that "died" after its step-2 checkpoint.
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "4")
    resumed = pretrain_dynamo(dataclasses.replace(config, out=str(tmp_path / "b")), episodes, progress=False)
    assert [s for s, _ in resumed.losses] == [3, 4]
    np.testing.assert_array_equal([v for _, v in resumed.losses], [v for _, v in full.losses[2:]])
    log = [json.loads(line) for line in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log if "loss" in row] == [1, 2, 3, 4]  # no duplicated steps

    config_a, params_a = load_dynamo_encoder(tmp_path / "a")
    _, params_b = load_dynamo_encoder(tmp_path / "b" / "checkpoints")
    assert config_a.image_size == 16 and config_a.cameras == CAMERAS
    for x, y in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

    # A policy built with the encoder's fields embeds frames exactly as the pretrained encoder does.
    policy_cfg = policy_config_with_encoder(
        PolicyConfig(
            image_size=32,
            image_shift=2,
            denoiser_width=16,
            denoiser_depth=1,
            obs_horizon=1,
            action_horizon=2,
            n_action_steps=1,
        ),
        config_a,
    )
    policy = Policy(policy_cfg, rngs=nnx.Rngs(7))
    install_encoder(policy, config_a, params_a)
    _, encoder = load_encoder_module(tmp_path / "a")
    frames = episodes[0].frames["wrist"][:3]
    np.testing.assert_allclose(policy.encoders[SHARED](frames), encoder(frames), rtol=1e-6)
    # Frozen: exactly the pretrained encoder's leaves are masked out of training.
    mask = frozen_mask(nnx.state(policy, nnx.Param), True)
    assert all(jax.tree.leaves(mask["encoders"])) and not any(jax.tree.leaves(mask["denoiser"]))
    assert sum(jax.tree.leaves(mask)) == len(jax.tree.leaves(params_a))
    with pytest.raises(UserError, match="feature_dim"):
        install_encoder(
            Policy(dataclasses.replace(policy_cfg, feature_dim=4), rngs=nnx.Rngs(0)), config_a, params_a
        )


def test_ema_target_run_and_resume_with_another_model_names_the_keys(tmp_path):
    ema = dataclasses.replace(MODEL, ema_target=True)
    first = pretrain_dynamo(
        _config(tmp_path / "run", steps=1, probe_every=0, model=ema), _episodes(objects=True), progress=False
    )
    assert np.isfinite(first.final_loss)
    # With object poses in the dataset, they are probed next to the robot state.
    probe = first.evaluations[-1]["probe"]
    assert set(probe) == {"state", "object_state", "action", "spread"}
    assert set(probe["object_state"]) == {"linear", "knn", "nearest_neighbour"}
    assert probe["object_state"]["nearest_neighbour"] >= 0.0
    wider = _config(tmp_path / "run", steps=2, probe_every=0, model=dataclasses.replace(ema, latent_dim=6))
    with pytest.raises(UserError, match=r"latent_dim: 4 → 6"):
        pretrain_dynamo(wider, _episodes(), progress=False)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["pretrain", "dynamo", "--preset", "tiny", "--dataset", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such dataset" in err
    assert main(["pretrain", "byol"]) == 2
    assert "choose one of dynamo" in capsys.readouterr().err


def test_default_preset_is_the_paper_setting():
    from robopolicy.models.dynamo import DynaMo
    from robopolicy.presets import PRETRAIN_DYNAMO

    config = PRETRAIN_DYNAMO["default"]
    opt = config.optimizer
    assert config.batch_size == 64 and (opt.learning_rate, opt.b1, opt.b2) == (1e-4, 0.9, 0.999)
    assert (opt.weight_decay, opt.grad_clip_norm, opt.grad_clip) == (0.0, 0.1, "per_module")
    assert (opt.schedule, opt.warmup_steps, config.steps) == ("warmup_cosine", 1250, 10000)
    m = config.model
    assert (m.encoder, m.feature_dim, m.window, m.covariance_weight) == ("resnet18_avgpool", 512, 5, 0.04)
    assert (m.views, m.latent_dim, m.forward_dropout) == ("per_view", 32, 0.0)
    assert (m.transformer_layers, m.transformer_heads, m.transformer_dim) == (6, 6, 120)
    model = nnx.eval_shape(lambda: DynaMo(m, rngs=nnx.Rngs(0)))  # shapes only, nothing allocated
    assert len(model.inverse_dynamics.blocks) == len(model.forward_dynamics.blocks) == 6
    assert model.forward_dynamics.out.out_features == 512  # one view per sequence
    assert len(jax.tree.leaves(nnx.state(model, nnx.BatchStat))) == 2 * 20  # mean and var of 20 BatchNorms
    # The reference's per-environment settings are presets too.
    assert PRETRAIN_DYNAMO["sim_kitchen"].model.window == 2
    assert [
        PRETRAIN_DYNAMO[env].model.latent_dim for env in ("libero", "pusht", "sim_kitchen", "block_push")
    ] == [
        32,
        8,
        64,
        16,
    ]


def test_epochs_set_the_training_length():
    config = _config("unused", epochs=2.5, batch_size=4)
    assert config.total_steps(windows=10) == 7  # ⌈2.5 · 10 / 4⌉
    assert _config("unused").total_steps(windows=10) == 4  # epochs 0: `steps`
    with pytest.raises(ValueError, match="epochs"):
        _config("unused", epochs=-1)


def test_pretraining_and_training_take_the_same_run_flags():
    from robopolicy.cli_reference import verb_flags

    train_flags, pretrain_flags = verb_flags("train"), verb_flags("pretrain dynamo")

    def groups(flags: frozenset[str]) -> set[str]:
        return {f for f in flags if f.startswith(("--optimizer.", "--mesh.", "--log."))}

    assert groups(train_flags) == groups(pretrain_flags)
    assert {"--optimizer.schedule", "--mesh.fsdp", "--mesh.distributed", "--log.every"} <= groups(train_flags)
    run = {
        "--out",
        "--steps",
        "--batch-size",
        "--seed",
        "--checkpoint-every",
        "--keep-checkpoints",
        "--keep-period",
    }
    assert run <= train_flags & pretrain_flags


@pytest.mark.slow  # ResNet-18 compilations: pretraining's step, its probes and a policy's step
def test_batchnorm_statistics_are_trained_resumed_and_used_in_eval_mode_by_a_policy(tmp_path):
    episodes = _episodes()
    model = dataclasses.replace(MODEL, encoder="resnet18_avgpool", feature_dim=512, window=2)
    config = _config(tmp_path / "a", model=model, steps=2, checkpoint_every=1, probe_every=0)
    full = pretrain_dynamo(config, episodes, progress=False)
    # The running statistics are part of the checkpointed train state: a run resumed from step 1
    # continues from the saved ones and ends with the uninterrupted run's statistics, bit for bit.
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "b" / "checkpoints" / "2")
    resumed = pretrain_dynamo(dataclasses.replace(config, out=str(tmp_path / "b")), episodes, progress=False)
    np.testing.assert_array_equal([v for _, v in resumed.losses], [v for _, v in full.losses[1:]])
    config_a, encoder = load_encoder_module(tmp_path / "a")
    _, resumed_encoder = load_encoder_module(tmp_path / "b")
    for x, y in zip(
        jax.tree.leaves(nnx.state(encoder, WEIGHTS)),
        jax.tree.leaves(nnx.state(resumed_encoder, WEIGHTS)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    _, first = load_encoder_module(tmp_path / "a" / "checkpoints" / "1")
    stats, stats_1 = nnx.state(encoder, nnx.BatchStat), nnx.state(first, nnx.BatchStat)
    assert not np.allclose(
        np.asarray(stats["stem_norm"]["mean"][...]), np.asarray(stats_1["stem_norm"]["mean"][...])
    )
    # Two train-mode steps moved the running statistics away from their initial (0, 1).
    assert np.abs(np.asarray(stats["stem_norm"]["mean"][...])).max() > 0
    assert not np.allclose(np.asarray(stats["stem_norm"]["var"][...]), 1.0)

    frames = episodes[0].frames["wrist"][:3]
    eval_features = np.asarray(encoder(frames))
    assert eval_features.shape == (3, 512)
    # Eval mode (running statistics) is not train mode (the batch's own statistics).
    batch_mode = nnx.view(nnx.clone(encoder), use_running_average=False)(
        frames
    )  # updates the clone's statistics
    assert not np.allclose(eval_features, np.asarray(batch_mode), atol=1e-4)

    # A policy takes the encoder with its statistics, embeds as it does, and trains with the
    # statistics frozen (its encoders run in eval mode).
    head = PolicyConfig(
        image_size=16,
        denoiser_width=16,
        denoiser_depth=1,
        obs_horizon=1,
        action_horizon=2,
        n_action_steps=1,
        image_shift=0,
    )
    policy = Policy(policy_config_with_encoder(head, config_a), rngs=nnx.Rngs(7))
    install_encoder(policy, config_a, nnx.state(encoder, WEIGHTS))
    np.testing.assert_allclose(
        np.asarray(policy.encoders[SHARED](frames)), eval_features, rtol=1e-5, atol=1e-6
    )
    mask = frozen_mask(nnx.state(policy, WEIGHTS), False)
    assert sum(jax.tree.leaves(mask)) == len(jax.tree.leaves(stats))
    run = train(
        TrainConfig(
            out=str(tmp_path / "policy"),
            steps=1,
            batch_size=2,
            checkpoint_every=1,
            log=LogConfig(every=1),
            policy=head,
            encoder=str(tmp_path / "a"),
        ),
        episodes,
        progress=False,
    )
    assert np.isfinite(run.final_loss)
    trained = load_policy(tmp_path / "policy")
    for x, y in zip(
        jax.tree.leaves(nnx.filter_state(trained.params, nnx.BatchStat)), jax.tree.leaves(stats), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
