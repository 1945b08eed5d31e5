"""Episode logs (robopolicy/client/episode_log.py) and `robopolicy results import`: episodes evaluated
where the results store cannot be imported (the LIBERO client) reach the store in its one schema,
resumable, importable twice without duplicates, and readable by `robopolicy report`/`compare`."""

import dataclasses
import json

import pytest

from robopolicy.cli import main
from robopolicy.client.episode_log import EpisodeLog, LoggedRun
from robopolicy.errors import UserError
from robopolicy.eval.comparison import load_runs
from robopolicy.eval.results_import import import_episode_log
from robopolicy.eval.results_store import EpisodeRecord, ResultsStore

RUN = LoggedRun("ws://127.0.0.1:8000#runs/libero/train/checkpoints/500", 500, "abc123", {"mode": "chunk"})
TASK = "pick_up_the_black_bowl_between_the_plate_and_the_ramekin_and_place_it_on_the_plate"


def _episode(init_state_id: int, success: bool) -> dict:
    record = EpisodeRecord(
        task=TASK,
        init_state_id=init_state_id,
        seed=0,
        success=success,
        steps=80 if success else 220,
        failure_reason=None if success else "timeout: LIBERO's goal was not reached in 220 steps",
        wall_seconds=12.5,
        suite="libero_spatial",
        render_seconds=9.0,
        instruction="pick up the black bowl between the plate and the ramekin and place it on the plate",
    )
    return dataclasses.asdict(record)


def test_a_log_resumes_this_runs_episodes_only(tmp_path):
    log = EpisodeLog(tmp_path / "episodes.jsonl", RUN)
    assert log.finished() == set()
    log.append(_episode(0, True))
    log.append(_episode(1, False))
    EpisodeLog(log.path, dataclasses.replace(RUN, config_hash="other")).append(_episode(2, True))
    assert log.finished() == {(TASK, 0, 0), (TASK, 1, 0)}
    # A kill in the middle of a write leaves a last line without its end: that episode is not finished.
    with log.path.open("a") as f:
        f.write(json.dumps({"run": dataclasses.asdict(RUN), "episode": _episode(3, True)})[:40])
    assert log.finished() == {(TASK, 0, 0), (TASK, 1, 0)}


def test_import_records_the_runs_and_episodes_once(tmp_path):
    log = EpisodeLog(tmp_path / "episodes.jsonl", RUN)
    for i, success in enumerate([True, False, True]):
        log.append(_episode(i, success))
    db = tmp_path / "results.db"
    assert import_episode_log(log.path, db) == (1, 3)
    log.append(_episode(3, False))
    assert import_episode_log(log.path, db) == (1, 4)  # again, after the log grew: no duplicates
    with ResultsStore(db) as store:
        [run] = store.runs()
        assert (run.policy, run.checkpoint_step, run.config_hash, run.settings) == (
            RUN.policy,
            500,
            "abc123",
            {"mode": "chunk"},
        )
        episodes = store.episodes(run.run_id)
    assert [(e["init_state_id"], e["success"], e["suite"]) for e in episodes] == [
        (0, 1, "libero_spatial"),
        (1, 0, "libero_spatial"),
        (2, 1, "libero_spatial"),
        (3, 0, "libero_spatial"),
    ]
    [evaluated] = load_runs(db)
    assert evaluated.label == "127.0.0.1:8000:train@500"


def test_a_line_with_a_field_the_store_lacks_is_refused_with_its_line_number(tmp_path):
    log = EpisodeLog(tmp_path / "episodes.jsonl", RUN)
    log.append(_episode(0, True))
    log.append({**_episode(1, True), "camera": "agentview"})
    with pytest.raises(UserError, match=r"episodes.jsonl:2: unknown episode fields \['camera'\]"):
        import_episode_log(log.path, tmp_path / "results.db")


def test_results_import_command(tmp_path, capsys):
    log = EpisodeLog(tmp_path / "episodes.jsonl", RUN)
    log.append(_episode(0, True))
    db = tmp_path / "results.db"
    assert main(["results", "import", str(log.path), "--db", str(db)]) == 0
    assert f"imported 1 episodes of 1 runs into {db}" in capsys.readouterr().out
    (tmp_path / "bad.jsonl").write_text("not json\n")
    assert main(["results", "import", str(tmp_path / "bad.jsonl"), "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.jsonl:1: not JSON" in err[0]
