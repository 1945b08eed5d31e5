"""The evaluation verbs as a user meets them: eval into a database, sweep, report, compare."""

import textwrap

import pytest
from eval_fixtures import make_checkpoint

from robopolicy.cli import main


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "run", steps=(1, 2))


def test_eval_into_database_prints_task_table_and_resumes(run_dir, tmp_path, capsys):
    db = tmp_path / "e.db"
    args = ["eval", "--policy", str(run_dir), "--tasks", "cube_on_plate", "--init-states", "0:2"]
    args += ["--seeds", "0", "1", "--execution.max-steps", "3", "--db", str(db), "--video-episodes", "0"]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "cube_on_plate" in out.out and "0/4" in out.out and "95% Wilson CI" in out.out
    assert main(args) == 0
    assert "4 already in" in capsys.readouterr().err


def test_sweep_report_compare(run_dir, tmp_path, capsys):
    (tmp_path / "sweep.toml").write_text(
        textwrap.dedent(f"""
        db = "results.db"
        run_dirs = ["{run_dir}"]
        tasks = ["cube_on_plate"]
        init_states = "0:2"
        workers = 0
        video_episodes = 1
        [[settings]]
        name = "chunk"
        max_steps = 3
        [[settings]]
        name = "every"
        mode = "every_step"
        max_steps = 3
        settle_steps = 1
        """)
    )
    assert main(["sweep", "--config", str(tmp_path / "sweep.toml"), "--blind"]) == 0
    out = capsys.readouterr()
    assert "blind order" in out.err and out.out.count("0/2") == 4
    db = tmp_path / "results.db"

    assert main(["compare", "run@1/chunk", "run@2/chunk", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "exact McNemar p = 1" in out and "P(A > B) = 0.500" in out

    assert main(["report", str(db), str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    for needle in ("Success per suite", "Success per task", "Pairwise comparisons", "Holm p", "videos/"):
        assert needle in md
    html = (tmp_path / "report" / "report.html").read_text()
    assert "<video" in html and "success_vs_step.png" in html
    assert (tmp_path / "report" / "success_per_task.png").stat().st_size > 1000
    assert len(list((tmp_path / "report" / "videos").glob("*.mp4"))) == 4


def test_one_line_errors(run_dir, tmp_path, capsys):
    assert main(["eval", "--policy", str(tmp_path / "nope"), "--tasks", "cube_on_plate"]) == 2
    assert main(["eval", "--policy", str(run_dir), "--tasks", "juggle", "--db", str(tmp_path / "x.db")]) == 2
    assert main(["compare", "1", "2", "--db", str(tmp_path / "missing.db")]) == 2
    assert main(["sweep", "--config", str(tmp_path / "missing.toml")]) == 2
    assert main(["report", str(tmp_path / "missing.db"), str(tmp_path / "out")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 5
    assert "nope" in err[0] and "juggle" in err[1] and "missing.db" in err[2]
    assert "missing.toml" in err[3] and "missing.db" in err[4]
    assert not (tmp_path / "x.db").exists()


def test_self_verification_needs_past_token_heads(run_dir, tmp_path, capsys):
    args = ["eval", "--policy", str(run_dir), "--tasks", "cube_on_plate", "--init-states", "0"]
    args += ["--execution.self-verify-candidates", "4", "--db", str(tmp_path / "sv.db")]
    assert main(args) == 2
    assert "past-token" in capsys.readouterr().err
    assert not (tmp_path / "sv.db").exists()  # refused before any work


@pytest.mark.parametrize("verb", ["sweep", "report", "compare"])
def test_new_verbs_have_help(verb, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([verb, "--help"])
    assert exit_.value.code == 0
    assert "Presets" in capsys.readouterr().out


def test_eval_defaults_to_the_policy_task_and_unknown_suite_fails(run_dir, tmp_path, capsys):
    args = ["eval", "--policy", str(run_dir), "--init-states", "4", "--execution.max-steps", "2"]
    assert main([*args, "--db", str(tmp_path / "t.db"), "--video-episodes", "0"]) == 0
    assert "cube_on_plate" in capsys.readouterr().out
    assert (
        main(["eval", "--policy", str(run_dir), "--suite", "no_such_suite", "--db", str(tmp_path / "s.db")])
        == 2
    )
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "no_such_suite" in err[0]
    assert not (tmp_path / "s.db").exists()
