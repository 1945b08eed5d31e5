"""The embedding cache holds exactly what the policy's EMA encoder computes on each frame."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from flax import nnx

from robopolicy.cli import main
from robopolicy.data.embedding_cache import load_embedding_episodes, read_embedding_source
from robopolicy.data.episode import Episode
from robopolicy.data.rlds_writer import build_rlds_dataset, write_raw_episode
from robopolicy.errors import UserError
from robopolicy.models.policy import Policy
from robopolicy.models.policy_config import PolicyConfig
from robopolicy.train import checkpoint
from robopolicy.train.cache_embeddings import CacheEmbeddingsConfig, cache_embeddings
from robopolicy.train.frame_encoder import FrameEncoder

POLICY = PolicyConfig(
    image_size=16, encoder_channels=(4, 8), feature_dim=8, denoiser_width=32, denoiser_depth=1, image_shift=2
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    rng = np.random.default_rng(0)
    episodes = [
        Episode(
            frames={c: rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8) for c in ("agentview", "wrist")},
            state=rng.normal(size=(n, 9)).astype(np.float32),
            action=rng.uniform(-1, 1, size=(n, 7)).astype(np.float32),
            reward=np.zeros(n, np.float32),
            task="cube_on_plate",
            instruction="put the red cube on the plate",
            episode_id=i,
            seed=10 + i,
        )
        for i, n in enumerate([5, 3, 11])
    ]
    for e in episodes:
        write_raw_episode(root / "raw", e)
    build_rlds_dataset(
        root / "raw",
        root / "ds",
        config_name="t",
        cameras=("agentview", "wrist"),
        image_shape=(16, 16),
        state_dim=9,
        action_dim=7,
    )
    # A checkpoint as training writes it, with EMA weights that differ from the raw ones.
    params = nnx.state(Policy(POLICY, rngs=nnx.Rngs(0)), nnx.Param)
    ema = nnx.state(Policy(POLICY, rngs=nnx.Rngs(1)), nnx.Param)
    manager = checkpoint.checkpoint_manager(root / "run" / "checkpoints")
    checkpoint.save(
        manager, 7, {"params": params, "ema_params": ema}, {"policy_config": dataclasses.asdict(POLICY)}
    )
    manager.wait_until_finished()
    manager.close()
    return root, episodes, ema


def test_cached_embeddings_equal_the_encoder_applied_directly(setup):
    root, episodes, ema = setup
    config = CacheEmbeddingsConfig(encoder=str(root / "run"), dataset=str(root / "ds"), batch_size=4)
    result = cache_embeddings(config, progress=False)
    assert result.episodes == 3 and result.frames == 2 * (5 + 3 + 11)
    assert not (root / "ds_embeddings" / "raw").exists()

    cached = load_embedding_episodes(root / "ds_embeddings")
    assert [e.episode_id for e in cached] == [0, 1, 2]
    model = nnx.merge(nnx.graphdef(Policy(POLICY, rngs=nnx.Rngs(0))), ema)
    for source, episode in zip(episodes, cached, strict=True):
        assert episode.frames == {} and set(episode.embeddings) == {"agentview", "wrist"}
        for cam in ("agentview", "wrist"):
            assert (
                episode.embeddings[cam].shape == (len(source), 8)
                and episode.embeddings[cam].dtype == np.float32
            )
            direct = np.asarray(model.encoders[cam](jax.numpy.asarray(source.frames[cam][:3])))
            np.testing.assert_allclose(episode.embeddings[cam][:3], direct, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(episode.state, source.state)
        np.testing.assert_array_equal(episode.action, source.action)
        assert (episode.task, episode.instruction, episode.seed) == (
            source.task,
            source.instruction,
            source.seed,
        )

    record = read_embedding_source(root / "ds_embeddings")
    assert record["encoder_step"] == 7 and record["embedding_dim"] == 8 and record["weights"] == "ema"
    assert (
        record["encoder_checkpoint"].endswith("run/checkpoints")
        and record["policy_config"]["feature_dim"] == 8
    )

    with pytest.raises(UserError, match="already holds a dataset"):
        cache_embeddings(config, progress=False)


def test_batches_of_any_size_give_the_same_embeddings(setup):
    root, episodes, _ = setup
    frames = episodes[2].frames
    one = FrameEncoder(root / "run", batch_size=1)(frames)
    many = FrameEncoder(root / "run", batch_size=8)(frames)
    for cam in frames:
        np.testing.assert_allclose(one[cam], many[cam], rtol=1e-5, atol=1e-5)


def test_cli_and_its_errors(setup, capsys):
    root, _, _ = setup
    out = root / "cli_cache"
    args = [
        "cache-embeddings",
        "--encoder",
        str(root / "run"),
        "--dataset",
        str(root / "ds"),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert "embedded 38 frames of 3 episodes" in capsys.readouterr().out
    assert main(["data", "info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["mapping"] == "robopolicy_embeddings" and info["cameras"] == {"agentview": [8], "wrist": [8]}

    assert (
        main(
            [
                "cache-embeddings",
                "--encoder",
                str(root / "nope"),
                "--dataset",
                str(root / "ds"),
                "--out",
                str(root / "x"),
            ]
        )
        == 2
    )
    assert "no such checkpoint" in capsys.readouterr().err
    assert main(["cache-embeddings", "--dataset", str(root / "ds")]) == 2
    assert "give both --encoder RUN and --dataset PATH" in capsys.readouterr().err
