"""The CLI as a user meets it: help text, one-line errors with exit status 2, no tracebacks."""

import subprocess
import sys

import pytest

from robopolicy.cli import main


def _run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "robopolicy.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_top_level_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for verb in ("collect", "train", "eval", "quickstart"):
        assert verb in out


@pytest.mark.parametrize("verb", ["collect", "train", "eval", "quickstart"])
def test_subcommand_help(verb):
    proc = _run(verb, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--preset" in proc.stdout or "Presets" in proc.stdout


def _assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_train_on_missing_dataset(tmp_path):
    missing = tmp_path / "no_such_dataset"
    _assert_one_line_error(
        _run("train", "--dataset", str(missing), "--out", str(tmp_path / "run")), str(missing)
    )


def test_train_on_empty_dataset_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _assert_one_line_error(_run("train", "--dataset", str(empty), "--out", str(tmp_path / "run")), str(empty))


def test_eval_on_missing_checkpoint(tmp_path):
    missing = tmp_path / "no_such_run"
    _assert_one_line_error(_run("eval", "--checkpoint", str(missing)), str(missing))


def test_unknown_preset_and_command():
    _assert_one_line_error(_run("train", "--preset", "nope"), "nope")
    _assert_one_line_error(_run("fly"), "fly")


def test_invalid_config_value_names_field(tmp_path):
    _assert_one_line_error(_run("collect", "--num-episodes", "0", "--out", str(tmp_path)), "num_episodes")


def test_unknown_task_names_task(tmp_path):
    _assert_one_line_error(_run("collect", "--task", "juggle", "--out", str(tmp_path)), "juggle")


def test_config_validation_error_keeps_its_whole_message():
    proc = _run("train", "--steps", "0")
    _assert_one_line_error(proc, "steps must be a positive integer", "got 0")


def test_a_bug_keeps_its_traceback_and_is_not_a_user_error(monkeypatch):
    """Only UserError means "your input is wrong"; a ValueError from deep inside a library is a bug."""
    from robopolicy import cli
    from robopolicy.errors import UserError

    def bug(_config):
        raise ValueError("an internal inconsistency")

    monkeypatch.setitem(cli.VERBS, "suites", cli.Verb("list suites", bug))
    with pytest.raises(ValueError, match="internal inconsistency"):
        main(["suites"])

    def user_error(_config):
        raise UserError("some.toml: field 'x' must be a string")

    monkeypatch.setitem(cli.VERBS, "suites", cli.Verb("list suites", user_error))
    assert main(["suites"]) == 2


def test_uncaught_bug_exits_1_with_traceback(tmp_path):
    """What the console script does with a bug: Python's own traceback and status 1."""
    script = tmp_path / "bug.py"
    script.write_text(
        "import sys\n"
        "from robopolicy import cli\n"
        "def bug(_config):\n"
        "    raise ValueError('an internal inconsistency')\n"
        "cli.VERBS['suites'] = cli.Verb('list suites', bug)\n"
        "sys.exit(cli.main(['suites']))\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "an internal inconsistency" in proc.stderr
