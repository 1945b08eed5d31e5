"""Keep the documentation honest: the generated CLI reference is current, relative links resolve,
documented command lines name real commands and options, and the README's Python example runs."""

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from eval_fixtures import make_checkpoint

from robopolicy.cli import VERBS
from robopolicy.cli import main as cli_main
from robopolicy.cli_reference import field_docs, render_markdown, verb_flags

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
REGENERATE = "python -m robopolicy.cli_reference --out docs/cli.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    """The text without fenced code blocks (links inside them are not links)."""
    return FENCE.sub("", text)


def _blocks(text: str, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang == language]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for line in _prose(path.read_text(encoding="utf-8")).splitlines():
        match = re.match(r"#{1,6} (.+)", line)
        if match:
            slug = _slug(match.group(1))
            anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


def broken_links(doc: Path, root: Path = ROOT) -> list[str]:
    """Relative links of a markdown file whose file (or heading anchor) does not exist; paths in the
    messages are relative to `root`."""
    problems = []
    for target in LINK.findall(_prose(doc.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        path = (doc.parent / path_part).resolve() if path_part else doc
        if not path.exists():
            problems.append(f"{doc.relative_to(root)}: link to missing {target}")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            problems.append(f"{doc.relative_to(root)}: link to missing heading {target}")
    return problems


def command_lines(text: str) -> list[list[str]]:
    """The `robopolicy ...` command lines of the ```bash blocks, as tokens, comments stripped."""
    commands = []
    for block in _blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            tokens = shlex.split(line, comments=True)
            while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):  # VAR=value prefixes
                tokens = tokens[1:]
            if tokens and tokens[0] == "robopolicy":
                commands.append(tokens[1:])
    return commands


def command_problems(tokens: list[str]) -> list[str]:
    """What is wrong with one `robopolicy` command line: an unknown command or option."""
    if not tokens or tokens[0] in ("-h", "--help"):
        return []
    if "--" in tokens:  # `robopolicy launch ... -- train ...`: the command after `--` is checked too
        cut = tokens.index("--")
        return command_problems(tokens[:cut]) + command_problems(tokens[cut + 1 :])
    verb = " ".join(tokens[:2]) if " ".join(tokens[:2]) in VERBS else tokens[0]
    if verb not in VERBS:
        return [f"unknown command {tokens[0]!r} in: robopolicy {' '.join(tokens)}"]
    flags = {t.strip("[]").split("=", 1)[0] for t in tokens if t.strip("[]").startswith("-")}
    return [f"robopolicy {verb}: no option {flag}" for flag in sorted(flags - verb_flags(verb))]


def test_cli_reference_is_current() -> None:
    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == render_markdown(), f"docs/cli.md is out of date; regenerate it with `{REGENERATE}`"


def test_cli_reference_covers_every_command_and_option() -> None:
    text = render_markdown()
    for verb in VERBS:
        assert f"## `robopolicy {verb}`" in text
        for flag in verb_flags(verb) - {"--preset", "-h", "--help"}:
            assert f"`{flag}`" in text, f"{verb}: {flag} missing from the reference"


@dataclass(frozen=True)
class _Documented:
    """A config.

    Attributes:
        alpha: the first
            field, on two lines.
        beta, gamma: documented together.
    delta: a list outside the Attributes section
        counts too.
    """

    alpha: int = 0
    beta: int = 0
    gamma: int = 0
    delta: int = 0
    epsilon: int = 0


def test_reference_options_are_those_the_cli_help_shows(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    for verb in VERBS:
        with pytest.raises(SystemExit):
            cli_main([*verb.split(), "--help"])
        help_text = capsys.readouterr().out
        # An option's line starts with its flags (a box border and up to two spaces before them), then
        # its metavar, then, after a wider gap, the description; wrapped descriptions are indented more.
        heads = [m.group(1).split("  ")[0] for m in re.finditer(r"^[│ ]{0,3}(-.*)$", help_text, re.MULTILINE)]
        shown = {flag for head in heads for flag in re.findall(r"(?<![\w-])-{1,2}[a-z][\w.-]*", head)}
        reference = verb_flags(verb) - {"--preset"}
        assert reference <= set(re.findall(r"-{1,2}[a-z][\w.-]*", help_text)), verb
        assert shown and shown <= reference, f"{verb}: {sorted(shown - reference)} missing from the reference"


def test_field_docs_reads_grouped_and_plain_entries() -> None:
    assert field_docs(_Documented) == {
        "alpha": "the first field, on two lines.",
        "beta": "(beta, gamma) documented together.",
        "gamma": "(beta, gamma) documented together.",
        "delta": "a list outside the Attributes section counts too.",
    }


def test_relative_links_resolve() -> None:
    problems = [p for doc in DOCS for p in broken_links(doc)]
    assert not problems, "\n".join(problems)


def test_link_checker_reports_missing_files_and_headings(tmp_path: Path) -> None:
    doc = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# A heading\n\n## `robopolicy data info`\n")
    doc.write_text(
        "[ok](other.md#a-heading) [ok2](other.md#robopolicy-data-info) [web](https://example.org)\n"
        "[gone](missing.md) [bad anchor](other.md#nowhere)\n```bash\n[in code](ignored.md)\n```\n"
    )
    problems = broken_links(doc, root=tmp_path)
    assert problems == [
        "page.md: link to missing missing.md",
        "page.md: link to missing heading other.md#nowhere",
    ]


def test_documented_commands_name_real_commands_and_options() -> None:
    found = 0
    problems = []
    for doc in DOCS:
        for tokens in command_lines(doc.read_text(encoding="utf-8")):
            found += 1
            problems += [f"{doc.relative_to(ROOT)}: {p}" for p in command_problems(tokens)]
    assert found > 30  # the check must actually see the docs' command lines
    assert not problems, "\n".join(problems)


def test_command_checker_reports_unknown_commands_and_options() -> None:
    text = (
        "```bash\nrobopolicy data info D --json   # fine\n"
        "XLA_FLAGS=--x robopolicy train --preset tiny --mesh.fsdp 2 \\\n    --no-such-flag 1\n"
        "robopolicy sweep --config s.toml [--blind] [--backend=ray]\nrobopolicy frobnicate\n```\n"
        "```python\nrobopolicy train --ignored\n```\n"
    )
    problems = [p for tokens in command_lines(text) for p in command_problems(tokens)]
    assert problems == [
        "robopolicy train: no option --no-such-flag",
        "unknown command 'frobnicate' in: robopolicy frobnicate",
    ]


def test_readme_python_example_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from robopolicy.sim import TabletopEnv

    # A shorter step cap keeps the test fast; the example's loop ends on it exactly as on the task's.
    monkeypatch.setattr(TabletopEnv, "max_steps", property(lambda self: 20))
    example = _blocks((ROOT / "README.md").read_text(encoding="utf-8"), "python")[0]
    assert len([ln for ln in example.splitlines() if ln.strip()]) <= 10
    assert '"runs/quickstart/train"' in example
    checkpoint = make_checkpoint(tmp_path / "run")  # a tiny untrained policy stands in for the quickstart's
    namespace: dict = {}
    exec(compile(example.replace("runs/quickstart/train", str(checkpoint)), "README.md", "exec"), namespace)
    assert namespace["terminated"] or namespace["truncated"]
    assert capsys.readouterr().out.strip() in ("success: True", "success: False")
