"""A policy takes a DynaMo encoder: `train --encoder` (frozen or end to end) and `cache-embeddings`."""

import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from robopolicy.cli import main
from robopolicy.data.embedding_cache import load_embedding_episodes
from robopolicy.data.episode import Episode
from robopolicy.data.rlds_writer import build_rlds_dataset, write_raw_episode
from robopolicy.errors import UserError
from robopolicy.models.dynamo_config import DynamoConfig
from robopolicy.models.policy import Policy
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train import checkpoint
from robopolicy.train.cache_embeddings import CacheEmbeddingsConfig, cache_embeddings
from robopolicy.train.checkpoint import load_dynamo_encoder
from robopolicy.train.loaded_policy import load_policy
from robopolicy.train.optimizer import OptimizerConfig
from robopolicy.train.pretrain_dynamo import pretrain_dynamo
from robopolicy.train.pretrain_dynamo_config import DYNAMO_OPTIMIZER, PretrainDynamoConfig
from robopolicy.train.pretrained_encoder import load_encoder_module
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
HEAD = PolicyConfig(
    encoder_channels=(8,),
    feature_dim=4,
    denoiser_width=16,
    denoiser_depth=1,
    obs_horizon=1,
    action_horizon=4,
    n_action_steps=2,
    image_shift=2,
)


def _dataset(root, name: str, size: int) -> str:
    rng = np.random.default_rng(size)
    for i, n in enumerate([9, 7, 8, 10]):
        episode = Episode(
            frames={c: rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8) for c in CAMERAS},
            state=rng.normal(size=(n, 9)).astype(np.float32),
            action=rng.uniform(-1, 1, size=(n, 7)).astype(np.float32),
            reward=np.zeros(n, np.float32),
            task="cube_on_plate",
            instruction="put the red cube on the plate",
            episode_id=i,
            seed=i,
        )
        write_raw_episode(root / f"raw_{name}", episode)
    build_rlds_dataset(
        root / f"raw_{name}",
        root / name,
        config_name="t",
        cameras=CAMERAS,
        image_shape=(size, size),
        state_dim=9,
        action_dim=7,
    )
    return str(root / name)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("dynamo_policy")
    dataset = _dataset(root, "ds", 16)
    config = PretrainDynamoConfig(
        dataset=dataset,
        out=str(root / "dynamo"),
        steps=2,
        batch_size=4,
        checkpoint_every=2,
        log=LogConfig(every=1),
        probe_every=0,
        holdout_fraction=0.25,
        optimizer=dataclasses.replace(DYNAMO_OPTIMIZER, learning_rate=1e-2),
        model=MODEL,
    )
    pretrain_dynamo(config, progress=False)
    return root, dataset, str(root / "dynamo")


def _train(setup, out: str, **overrides) -> TrainConfig:
    root, dataset, _ = setup
    settings = {
        "dataset": dataset,
        "out": str(root / out),
        "steps": 2,
        "batch_size": 4,
        "log": LogConfig(every=1),
        "checkpoint_every": 2,
        "policy": HEAD,
        "optimizer": OptimizerConfig(learning_rate=1e-2, warmup_steps=0),
    }
    config = TrainConfig(**{**settings, **overrides})
    train(config, progress=False)
    return config


def _restored(run: str) -> tuple[dict, dict]:
    directory, step, meta = checkpoint.load_meta(run)
    manager = checkpoint.ocp.CheckpointManager(directory.resolve())
    restored = manager.restore(
        step, args=checkpoint.ocp.args.Composite(state=checkpoint.ocp.args.StandardRestore())
    )
    manager.close()
    return restored.state, meta


def _leaves(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_frozen_dynamo_encoder_is_bitwise_unchanged_while_the_head_trains(setup):
    _, _, dynamo = setup
    _train(setup, "frozen", encoder=dynamo, freeze_encoder=True)
    _, pretrained = load_dynamo_encoder(dynamo)
    state, meta = _restored(str(setup[0] / "frozen"))
    assert meta["encoder_source"]["kind"] == "dynamo" and meta["encoder_source"]["frozen"]
    assert (
        meta["policy_config"]["feature_dim"] == MODEL.feature_dim and meta["policy_config"]["shared_encoder"]
    )
    for key in ("params", "ema_params"):
        for got, want in zip(_leaves(state[key]["encoders"]["shared"]), _leaves(pretrained), strict=True):
            assert got.tobytes() == want.tobytes()
    start = Policy_params(meta)
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(_leaves(state["params"]["denoiser"]), _leaves(start["denoiser"]), strict=True)
    ]
    assert sum(changed) > len(changed) // 2  # leaves with a zero first gradient may stay put


def Policy_params(meta: dict) -> dict:
    """The head's initial parameters: same seed, same config (the encoder is overwritten afterwards)."""
    config = PolicyConfig.from_dict(meta["policy_config"])
    return nnx.to_pure_dict(nnx.state(Policy(config, rngs=nnx.Rngs(0)), nnx.Param))


def test_fine_tuned_dynamo_encoder_changes_and_random_init_can_be_frozen(setup):
    _, _, dynamo = setup
    _train(setup, "tuned", encoder=dynamo)
    _, pretrained = load_dynamo_encoder(dynamo)
    state, meta = _restored(str(setup[0] / "tuned"))
    assert meta["encoder_source"] == {
        "kind": "dynamo",
        "checkpoint": meta["encoder_source"]["checkpoint"],
        "frozen": False,
    }
    got = _leaves(state["params"]["encoders"]["shared"])
    assert any(not np.array_equal(a, b) for a, b in zip(got, _leaves(pretrained), strict=True))

    _train(setup, "random_frozen", freeze_encoder=True)
    state, meta = _restored(str(setup[0] / "random_frozen"))
    assert meta["encoder_source"] == {"kind": "random_init", "checkpoint": "", "frozen": True}
    start = Policy_params(meta)
    for cam in CAMERAS:
        for a, b in zip(
            _leaves(state["params"]["encoders"][cam]), _leaves(start["encoders"][cam]), strict=True
        ):
            assert a.tobytes() == b.tobytes()


def test_mismatches_are_one_line_user_errors(setup, tmp_path, capsys):
    root, dataset, dynamo = setup
    # Frames of another size are resized to the encoder's (the policy's) size, not refused.
    other = _dataset(tmp_path, "ds32", 32)
    train(
        dataclasses.replace(
            TrainConfig(),
            dataset=other,
            out=str(tmp_path / "a"),
            encoder=dynamo,
            policy=HEAD,
            steps=1,
            batch_size=2,
        ),
        progress=False,
    )
    _, meta = _restored(str(tmp_path / "a"))
    assert meta["policy_config"]["image_size"] == 16  # the DynaMo encoder's, from its 16 px dataset
    assert meta["native_image_shapes"][other] == {cam: [32, 32, 3] for cam in CAMERAS}
    # A policy run's checkpoint (weights and meta as training writes them) is not a DynaMo encoder.
    params = nnx.state(Policy(dataclasses.replace(HEAD, state_dim=9), rngs=nnx.Rngs(0)), nnx.Param)
    manager = checkpoint.checkpoint_manager(root / "policy_run" / "checkpoints")
    checkpoint.save(
        manager, 1, {"params": params, "ema_params": params}, {"policy_config": dataclasses.asdict(HEAD)}
    )
    manager.wait_until_finished()
    manager.close()
    with pytest.raises(UserError, match="not a DynaMo encoder checkpoint"):
        _train(setup, "b", encoder=str(root / "policy_run"))
    code = main(
        ["train", "--dataset", dataset, "--out", str(tmp_path / "c"), "--encoder", str(root / "policy_run")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "DynaMo" in err


def test_cache_embeddings_of_a_dynamo_checkpoint_equal_the_encoder_applied_directly(setup, tmp_path):
    _, dataset, dynamo = setup
    result = cache_embeddings(
        CacheEmbeddingsConfig(encoder=dynamo, dataset=dataset, out=str(tmp_path / "emb")), progress=False
    )
    _, encoder = load_encoder_module(dynamo)
    from robopolicy.data.rlds_reader import load_episodes

    source = {e.episode_id: e for e in load_episodes(dataset)}
    cached = load_embedding_episodes(result.dataset_dir)
    assert len(cached) == len(source)
    for episode in cached:
        for cam in CAMERAS:
            want = np.asarray(encoder(source[episode.episode_id].frames[cam]))
            np.testing.assert_allclose(episode.embeddings[cam], want, rtol=1e-5, atol=1e-5)


def test_stage2_head_trains_on_dynamo_features_and_evaluation_composes_the_encoder(setup):
    root, _, dynamo = setup
    cached = dataclasses.replace(HEAD, encoder="cached", image_shift=0)
    _train(setup, "stage2", encoder=dynamo, policy=cached)
    policy = load_policy(str(root / "stage2"))
    assert policy.meta["encoder_source"]["kind"] == "stage1_cache"
    assert policy.meta["stage1_encoder"]["policy_config"]["feature_dim"] == MODEL.feature_dim
    assert policy.frame_encoder is not None and policy.frame_encoder.weights == "dynamo"
