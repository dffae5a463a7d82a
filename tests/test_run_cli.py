"""`bcistream run` / `replay` argument errors: one line, exit 2, before anything is opened."""

from __future__ import annotations

import pytest

from bcistream.cli import main


@pytest.mark.parametrize(("argv", "message"), [
    (["--from", "udp:x"], "'udp:x': expected one of lsl:..., kafka:..."),
    (["--from", "kafka:"], "'kafka:': expected one of lsl:..., kafka:..."),
    (["--from", "lsl:amp", "--to", "file:x"], "'file:x': expected one of stdout:..., jsonl:..."),
    (["--from", "lsl:amp", "--trigger", "sometimes"], "--trigger: must be hop, cue or both"),
    (["--from", "lsl:amp", "--hop", "0"], "error: --hop: must be > 0, got 0"),
    (["--from", "lsl:amp", "--model", "/nowhere/model"], "model '/nowhere/model'"),
])
def test_run_argument_errors(argv, message, capsys):
    args = ["run", *argv] if "--model" in argv else ["run", *argv, "--model", "/nowhere/model"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_replay_argument_errors(fixtures_dir, tmp_path, capsys):
    gdf = str(fixtures_dir / "A99T-synthetic.gdf")
    assert main(["replay", gdf, "--to", "udp"]) == 2
    assert "--to: must be 'lsl' or 'kafka'" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "missing.gdf")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["replay", gdf, "--speed", "-1"]) == 2
    assert "--speed: must be > 0 or 'max'" in capsys.readouterr().err
