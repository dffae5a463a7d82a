"""The data commands: one-line errors with exit code != 0, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from bcistream.cli import main


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_info_on_the_2a_fixture(fixtures_dir, capsys):
    code, out, _ = run(["info", str(fixtures_dir / "A98T-synthetic-noEOG.gdf")], capsys)
    assert code == 0
    assert "250 Hz" in out and "matches" in out and "rejected: 1" in out
    assert "'left': 2" in out and "'tongue': 1" in out


def test_info_on_a_non_eeg_file_says_it_does_not_match(fixtures_dir, capsys):
    code, out, err = run(["info", str(fixtures_dir / "ecg-1ch.gdf")], capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and "does not match" in err and "ECG" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "{tmp}/missing.gdf"], "missing.gdf: no such file"),
        (["info", "{tmp}/trunc.gdf"], "trunc.gdf: MNE cannot read this file"),
        # MNE picks a reader by suffix: .txt is BOXY (fNIRS), whose bare AssertionError said nothing
        (["info", "{tmp}/notes.txt"], "as a .txt recording (AssertionError); recordings are .gdf"),
        # A0xE.mat holds labels; MNE tried it as FieldTrip and failed inside its own call
        (["info", "{tmp}/A01E.mat"], "A01E.mat: a .mat file is not read as a recording"),
        (["evaluate", "--data", "{tmp}/nope"], "nope: no such folder"),
        (["evaluate", "--data", "{tmp}", "--subject", "x"], "--subject: must be a number"),
        (["evaluate", "--data", "{tmp}", "--subject", "4"], "no training recording A04T"),
        (["evaluate", "--data", "{tmp}", "--profile", "{tmp}/bad.toml"], "invalid profile field"),
        (["evaluate", "--data", "{tmp}", "--subject", "1"], "lacks 22 of the 22 channels"),
    ],
)
def test_bad_input_one_line_error(tmp_path, fixtures_dir, capsys, argv, message):
    data = (fixtures_dir / "A99T-synthetic.gdf").read_bytes()
    (tmp_path / "trunc.gdf").write_bytes(data[:100_000])
    (tmp_path / "notes.txt").write_text("hello\n")
    shutil.copy(fixtures_dir / "A99E.mat", tmp_path / "A01E.mat")
    (tmp_path / "bad.toml").write_text('name = "x"\nchannels = ["C3"]\nsfreq = 0\n[classes]\na="l"\nb="r"\n')
    shutil.copy(fixtures_dir / "ecg-1ch.gdf", tmp_path / "A01T.gdf")
    code, _, err = run([a.replace("{tmp}", str(tmp_path)) for a in argv], capsys)
    assert code == 2
    assert message in err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_console_script_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", "from bcistream.cli import console_main; console_main()",
         "info", str(tmp_path / "none.gdf")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_evaluate_with_too_few_trials_says_so(tmp_path, fixtures_dir, capsys):
    shutil.copy(fixtures_dir / "A99T-synthetic.gdf", tmp_path / "A05T.gdf")
    code, _, err = run(["evaluate", "--data", str(tmp_path), "--folds", "2"], capsys)
    assert code == 2
    assert "too few trials to fit" in err and "'tongue': 1" in err
