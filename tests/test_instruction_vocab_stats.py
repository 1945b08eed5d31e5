"""The instruction vocabulary and the dataset statistics stored next to a dataset."""

import json

import numpy as np
import pytest

from robopolicy.data.dataset_stats import STATS_FILE, DatasetStats, load_or_compute_stats
from robopolicy.data.episode import Episode
from robopolicy.data.instruction_vocab import InstructionVocab, split_words
from robopolicy.errors import UserError


def test_vocab_ids_padding_unknown_and_truncation():
    vocab = InstructionVocab.build(["Put the red cube on the plate.", "open the drawer"], max_length=5)
    assert vocab.words == ("cube", "drawer", "on", "open", "plate", "put", "red", "the")
    assert vocab.size == 10
    np.testing.assert_array_equal(vocab.encode("open THE drawer"), [5, 9, 3, 0, 0])
    np.testing.assert_array_equal(vocab.encode("close the blue drawer now please"), [1, 9, 1, 3, 1])
    assert vocab.encode("").dtype == np.int32
    assert InstructionVocab.from_dict(json.loads(json.dumps(vocab.to_dict()))) == vocab
    assert split_words("Pick up the 2nd bowl!") == ["pick", "up", "the", "2nd", "bowl"]


def test_vocab_validation():
    with pytest.raises(ValueError, match="max_length"):
        InstructionVocab(("a",), 0)


def _episode(eid: int, n: int, instruction: str) -> Episode:
    rng = np.random.default_rng(eid)
    return Episode(
        frames={"cam": np.zeros((n, 2, 2, 3), np.uint8)},
        state=rng.normal(size=(n, 3)).astype(np.float32),
        action=rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
        reward=np.zeros(n, np.float32),
        task="t",
        instruction=instruction,
        episode_id=eid,
    )


def test_stats_computed_once_and_stored_next_to_the_dataset(tmp_path):
    episodes = [_episode(0, 5, "lift the cube"), _episode(1, 7, "push the cube")]
    stats = load_or_compute_stats(tmp_path, episodes)
    assert (tmp_path / STATS_FILE).is_file()
    assert stats.words == ("cube", "lift", "push", "the") and stats.num_steps == 12
    actions = np.concatenate([e.action for e in episodes])
    np.testing.assert_allclose(stats.keys["action"].q99, np.quantile(actions, 0.99, axis=0), rtol=1e-6)
    np.testing.assert_allclose(
        stats.keys["state"].mean, np.concatenate([e.state for e in episodes]).mean(0), rtol=1e-5
    )

    # A second read uses the file: a marker written into it comes back.
    data = json.loads((tmp_path / STATS_FILE).read_text())
    data["keys"]["action"]["max"] = [9.0, 9.0]
    (tmp_path / STATS_FILE).write_text(json.dumps(data))
    np.testing.assert_array_equal(load_or_compute_stats(tmp_path, episodes).keys["action"].max, [9.0, 9.0])

    # A dataset of another size is recomputed and the file rewritten.
    more = [*episodes, _episode(2, 4, "lift the cube")]
    assert load_or_compute_stats(tmp_path, more).num_episodes == 3
    assert DatasetStats.load(tmp_path / STATS_FILE).num_episodes == 3
    assert load_or_compute_stats(None, episodes).num_episodes == 2


def test_unreadable_stats_file_is_a_user_error(tmp_path):
    (tmp_path / STATS_FILE).write_text("{not json")
    with pytest.raises(UserError, match=f"{STATS_FILE}: unreadable dataset statistics"):
        load_or_compute_stats(tmp_path, [_episode(0, 3, "x")])
