"""README "Your own data": the 3-channel profile and every command of the section, as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from bcistream.cli import main
from tests.own_data import write_bids, write_runs, write_xdf_sessions

README = Path(__file__).parents[1] / "README.md"
FAKE = ('name = "fake"\nchannels = ["C3", "Cz", "C4"]\nsfreq = 128.0\nwindow_s = 1.5\noffset_s = 0.25\n'
        '[classes]\nfake1 = "fake1"\nfake2 = "fake2"\nfake3 = "fake3"\n')


def _section() -> str:
    text = README.read_text()
    start = text.index("### Your own data")
    return text[start:text.index("\n### ", start + 1)]


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", _section(), flags=re.S)


@pytest.mark.slow
def test_readme_own_data_section_runs_as_written(tmp_path, monkeypatch, capsys):
    from bcistream.data.synth import make_small_dataset

    monkeypatch.chdir(tmp_path)
    for key, value in {"BCISTREAM_HOME": tmp_path / "home", "MNE_DATA": tmp_path / "mne_data",
                       "_MNE_FAKE_HOME_DIR": tmp_path / "mnehome"}.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.setenv("BCISTREAM_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("BCISTREAM_WANDB_MODE", "disabled")
    monkeypatch.setenv("MOABB_DOWNLOAD_PROVIDER", "upstream")
    (tmp_path / "mne_data").mkdir()
    (toml,) = _blocks("toml")
    Path("my-rig.toml").write_text(toml)  # the README's 3-channel profile, exactly
    Path("fake.toml").write_text(FAKE)
    write_runs(tmp_path / "rig")
    write_xdf_sessions(tmp_path / "xdf")
    write_bids(tmp_path / "bids")
    make_small_dataset(tmp_path / "2a", subjects=1, n_trials_per_class=8)
    (bash,) = _blocks("bash")
    lines = [ln for ln in bash.splitlines() if ln.startswith("bcistream ")]
    assert len(lines) >= 8
    for line in lines:
        argv = shlex.split(line)[1:]
        code = main(argv)
        out, err = capsys.readouterr()
        if "BNCI2014_001" in line:  # not cached here: one line, no download
            assert code == 2 and "MOABB's cache" in err and "never downloads" in err, err
            continue
        assert code == 0, (line, err)
        if argv[0] == "train":
            assert "bcistream-S001 v1: promoted" in out
        if argv[0] == "tune":
            nxt = next(ln for ln in out.splitlines() if ln.startswith("next: "))
            # The next: command repeats every option the user gave, and runs.
            for opt in ("--train", "rig/S001R0[12].edf", "--profile", "my-rig.toml", "--folds",
                        "--from-study"):
                assert opt in nxt
            assert main(shlex.split(nxt.removeprefix("next: "))[1:] + ["--no-promote"]) == 0
            # The study is keyed by profile and data: other data refuse to join it.
            study = shlex.split(nxt)[shlex.split(nxt).index("--from-study") + 1]
            code = main(["tune", "--train", "rig/S001R0[34].edf", "--profile", "my-rig.toml", "--trials", "1",
                         "--study", study])
            _, err = capsys.readouterr()
            assert code == 2 and "tuned on other data" in err
