"""Every ``bcistream`` command line in README.md and docs/ (```bash blocks) runs or parses as written.

What runs where, so nothing is run twice:

- README "Your own data" block: run in full by tests/test_readme_own_data.py;
- ``curl`` and ``python -c`` lines: run against a live service by tests/test_docs_curl.py;
- every other ``bcistream`` line: parsed here by the real command (options, types, ranges,
  required values — what drifted before: ``train --on k8s`` was "No such option"); the fast and
  self-contained ones also run in full: ``--on k8s`` lines as a dry run, the README's "after make
  demo" block against a freshly trained ``bcistream-demo-A01``;
- README's ```python block (the Python API): run as written, in a scratch folder.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bcistream.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]
#: Heads of README's shell lines; anything else in a ```bash block is a test failure (unchecked docs).
KNOWN_HEADS = ("bcistream ", "curl ", "python -c ", "make ")


def _own_data_section(text: str) -> str:
    start = text.index("### Your own data")
    return text[start:text.index("\n### ", start + 1)]


def shell_lines(path: Path) -> list[str]:
    """The lines of every ```bash block (continuations joined, comments and blanks dropped)."""
    text = path.read_text()
    if path == README:  # run in full by test_readme_own_data.py
        text = text.replace(_own_data_section(text), "")
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip() if not line.lstrip().startswith("#") else ""
            if line:
                out.append(line)
    return out


def commands() -> list[tuple[str, list[str]]]:
    """``(file, argv after 'bcistream')`` for every bcistream line of README.md and docs/."""
    return [(p.name, shlex.split(line)[1:]) for p in DOCS for line in shell_lines(p)
            if line.startswith("bcistream ")]


def parse_only(argv: list[str]) -> None:
    """Parse ``bcistream ARGV`` with the real command objects without running it (click errors raise)."""
    import typer.main

    from bcistream.cli import app

    cmd = typer.main.get_command(app)
    ctx = cmd.make_context("bcistream", list(argv))
    while hasattr(cmd, "resolve_command"):  # a group: descend into the sub-command
        rest = [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])), *ctx.args]
        name, sub, args = cmd.resolve_command(ctx, rest)
        assert sub is not None, argv
        ctx = sub.make_context(name, args, parent=ctx)
        cmd = sub


def test_readme_shell_lines_are_all_checked():
    lines = shell_lines(README)
    unknown = [ln for ln in lines if not ln.startswith(KNOWN_HEADS)]
    assert not unknown, f"README lines no test runs: {unknown}"
    assert len([ln for ln in lines if ln.startswith("bcistream ")]) >= 15


def test_docs_name_models_that_training_registers():
    # train and demo register NAME-LABEL: models:/bcistream@... is made only by `retrain` without
    # --name, which is what the k8s manifests run (docs/kubernetes.md describes them).
    for path in DOCS:
        if path.name == "kubernetes.md":
            continue
        assert "models:/bcistream@" not in path.read_text(), path.name
        assert "models:/bcistream/" not in path.read_text(), path.name


def _id(value: object) -> str:
    return value if isinstance(value, str) else " ".join(value)[:60]  # type: ignore[arg-type]


@pytest.mark.parametrize(("where", "argv"), commands(), ids=_id)
def test_every_doc_command_parses(where, argv):
    parse_only(argv)


def test_parse_only_catches_what_drifted():
    from click.exceptions import UsageError as ClickUsageError

    errors: tuple[type[BaseException], ...] = (ClickUsageError,)
    try:
        from typer._click.exceptions import UsageError as TyperUsageError  # typer >= 0.29 vendors click

        errors += (TyperUsageError,)
    except ImportError:
        pass
    for bad in (["train", "--no-such-option"], ["run", "--from", "lsl:a"], ["tune", "--trials", "0"]):
        with pytest.raises(errors):
            parse_only(bad)


def test_on_k8s_lines_run_as_dry_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path))
    k8s = [argv for _, argv in commands() if "--on" in argv and "k8s" in argv]
    assert {argv[0] for argv in k8s} >= {"train", "tune", "retrain"}
    for argv in k8s:
        run = argv if "--dry-run" in argv else [*argv, "--dry-run"]
        if "--logs" in run:
            run.remove("--logs")  # streams pod logs of a submitted Job: nothing to stream in a dry run
        assert main(run) == 0, (argv, capsys.readouterr().err)
        out = capsys.readouterr().out
        assert "kind: Job" in out and f"- {argv[0]}" in out, out[:500]


def test_version_and_help_at_80_columns(capsys, monkeypatch):
    from bcistream import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"bcistream {__version__}"
    monkeypatch.setenv("COLUMNS", "80")
    for argv in (["--help"], ["run", "--help"], ["train", "--help"], ["serve", "--help"],
                 ["retrain", "--help"]):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert "…" not in out, out  # no cut option name
        assert max(len(ln) for ln in out.splitlines()) <= 80
    assert main(["run", "--help"]) == 0
    assert "--dead-letter-topic" in capsys.readouterr().out
    assert main(["serve", "--help"]) == 0
    assert "NAME-LABEL@champion" in capsys.readouterr().out  # not broken after its hyphen


def _python_block() -> str:
    text = README.read_text()
    start = text.index("## Python API")
    (block,) = re.findall(r"```python\n(.*?)```", text[start:text.index("\n## ", start + 1)], flags=re.S)
    return block


@pytest.mark.slow
def test_readme_python_api_block_runs(tmp_path):
    from bcistream.data.synth import make_small_dataset

    make_small_dataset(tmp_path / "bcistream-data" / "data" / "synthetic-seed0-72", n_trials_per_class=12)
    (tmp_path / "api.py").write_text(_python_block())
    done = subprocess.run([sys.executable, "api.py"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    cv = re.search(r"CV accuracy (\d\.\d+)", done.stdout)
    assert cv and float(cv.group(1)) > 0.4, done.stdout  # 4 classes: chance is 0.25
    assert re.search(r"(\d+) decisions from 1 stream\(s\).*decided cues (\d+)/\2", done.stdout), done.stdout
    assert "Computing rank" not in done.stdout + done.stderr  # CSP fitted quietly
    assert "Traceback" not in done.stderr


def _after_demo_block() -> list[list[str]]:
    text = README.read_text()
    start = text.index("After `make demo`")
    (block,) = re.findall(r"```bash\n(.*?)```", text[start:], flags=re.S)[:1]
    return [shlex.split(ln.split(" #")[0])[1:] for ln in block.splitlines() if ln.startswith("bcistream ")]


@pytest.mark.slow
def test_after_demo_block_works_with_the_demo_model_name(tmp_path, monkeypatch, capsys):
    """The names README gives after ``make demo`` are the ones the demo registers."""
    from bcistream.cli.serve_cmds import default_champion
    from bcistream.data.synth import make_small_dataset

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path / "bcistream-data"))
    monkeypatch.setenv("BCISTREAM_WANDB_MODE", "disabled")
    monkeypatch.delenv("BCISTREAM_TRACKING_URI", raising=False)
    monkeypatch.delenv("BCISTREAM_MODEL_URI", raising=False)
    data = tmp_path / "bcistream-data" / "data" / "synthetic-seed0-72"
    make_small_dataset(data, n_trials_per_class=12)
    # What the demo's training step runs (demo_cmds: --name f"{model_name}-demo").
    assert main(["train", "--data", str(data), "--subject", "1", "--name", "bcistream-demo", "--folds", "3",
                 "--min-trials", "10"]) == 0
    capsys.readouterr()
    models, serve, replay, run = _after_demo_block()
    assert main(models) == 0
    out = capsys.readouterr().out
    assert "bcistream-demo-A01" in out and "champion" in out
    for argv in (serve, replay, run):
        parse_only(argv)
    assert Path(replay[1]).exists()  # the file the demo synthesizes
    uri = f"sqlite:///{(tmp_path / 'bcistream-data' / 'mlflow.db').resolve()}"
    assert default_champion("bcistream", uri) == "models:/bcistream-demo-A01@champion"
    # `run` as written loads the model and gets as far as looking for the stream.
    assert main([*run, "--resolve-timeout", "0.5", "--no-view"]) == 2
    err = capsys.readouterr().err
    assert "amp1" in err and "bcistream-demo-A01" not in err, err
    # A wrong name is refused in one line that lists the names that exist.
    assert main(["run", "--from", "lsl:amp1", "--model", "models:/bcistream@champion"]) == 2
    err = capsys.readouterr().err
    assert "registered models: bcistream-demo-A01 (challenger, champion)" in err, err
    assert len(err.strip().splitlines()) == 1, err
