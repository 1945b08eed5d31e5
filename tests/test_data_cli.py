"""`robopolicy data info` and `robopolicy data check` as a user meets them."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds
from rlds_fixtures import write_rlds

from robopolicy.cli import main
from robopolicy.data.dataset_summary import per_dim_stats


def _dataset(tmp_path, name, actions, instruction="stack it"):
    features = {
        "observation": {
            "cam": tfds.features.Tensor(shape=(4, 4, 3), dtype=np.uint8),
            "state": tfds.features.Tensor(shape=(2,), dtype=np.float32),
        },
        "action": tfds.features.Tensor(shape=(actions.shape[-1],), dtype=np.float32),
        "language_instruction": tfds.features.Text(),
    }
    episodes = [
        {
            "steps": [
                {
                    "observation": {"cam": np.zeros((4, 4, 3), np.uint8), "state": np.full(2, t, np.float32)},
                    "action": a,
                    "language_instruction": instruction,
                }
                for t, a in enumerate(episode_actions)
            ]
        }
        for episode_actions in actions
    ]
    return write_rlds(tmp_path / name, features, episodes, name=name)


def test_per_dim_stats_hand_computed():
    x = np.array([[0.0, 10.0], [1.0, 10.0], [2.0, 10.0], [3.0, 10.0], [4.0, 10.0]])
    stats = per_dim_stats(x)
    assert stats["mean"] == [2.0, 10.0] and stats["min"] == [0.0, 10.0] and stats["max"] == [4.0, 10.0]
    assert stats["std"] == pytest.approx([np.sqrt(2.0), 0.0])
    # Linear interpolation: the 1 % quantile of 0..4 is 0 + 0.01 * 4.
    assert stats["q01"] == pytest.approx([0.04, 10.0]) and stats["q99"] == pytest.approx([3.96, 10.0])


def test_info_table_and_json(tmp_path, capsys):
    actions = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    path = _dataset(tmp_path, "a", actions)
    assert main(["data", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "episodes  2" in out and "steps     6" in out and "steps/observation/cam" in out
    assert "stack it: 2 episodes, 6 steps" in out and "action statistics" in out

    assert main(["data", "info", str(tmp_path / "a"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["episodes"] == 2 and info["steps"]["total"] == 6 and info["mapping"] == "robopolicy"
    assert info["features"]["steps/observation/cam"] == {
        "shape": [4, 4, 3],
        "dtype": "uint8",
        "kind": "Tensor",
    }
    assert info["tasks"] == {"stack it": {"episodes": 2, "steps": 6, "instructions": ["stack it"]}}
    assert info["stats"]["action"] == per_dim_stats(actions.reshape(-1, 2))
    assert info["stats"]["state"]["max"] == [2.0, 2.0]


def test_check_exit_status_and_all_problems(tmp_path, capsys):
    clean = _dataset(tmp_path, "clean", np.zeros((2, 3, 7), np.float32))
    assert main(["data", "check", str(clean)]) == 0
    assert "2 episodes, 2 valid" in capsys.readouterr().out

    bad_actions = np.zeros((3, 3, 7), np.float32)
    bad_actions[1, 2, 0] = np.inf
    bad = _dataset(tmp_path, "bad", bad_actions)
    six = _dataset(tmp_path, "six", np.zeros((1, 3, 6), np.float32))
    assert main(["data", "check", str(clean), str(bad), str(six), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    texts = [p["text"] for p in report["problems"]]
    assert len(texts) == 2
    assert (
        texts[0].startswith(f"{bad}: episode ")
        and "key 'action' contains NaN or Inf at 1 step(s), first at step 2" in texts[0]
    )
    assert (
        texts[1]
        == f"{six}: episode 0: key 'action' has action dimension 6, which disagrees with 7 in {clean}"
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["data"], "choose a sub-command: info, check"),
        (["data", "info"], "give a dataset path"),
        (["data", "check", "/nonexistent/ds"], "/nonexistent/ds: no such dataset"),
        (["data", "info", "{empty}"], "not an RLDS dataset"),
        (["data", "info", "{ds}", "--mapping", "nope"], "unknown key mapping 'nope'"),
    ],
)
def test_user_errors_are_one_line(tmp_path, capsys, args, needle):
    ds = _dataset(tmp_path, "x", np.zeros((1, 2, 7), np.float32))
    (tmp_path / "empty").mkdir()
    args = [a.format(empty=tmp_path / "empty", ds=ds) for a in args]
    capsys.readouterr()  # the dataset writer's progress output
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
