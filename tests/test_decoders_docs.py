"""docs/decoders.md and README's decoder commands are executable: run them."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from bcistream.cli import main
from tests.realtime_data import synth_recording

ROOT = Path(__file__).resolve().parent.parent


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_the_python_example_of_docs_decoders_runs():
    from bcistream.pipeline import epochs_from_recording, fit_filtered

    code = _blocks((ROOT / "docs" / "decoders.md").read_text(), "python")[0]
    recording = synth_recording(60.0, seed=0, trial_every=4.5)
    ns = {"profile": recording.profile, "recording": recording, "fit_filtered": fit_filtered,
          "epochs_from_recording": epochs_from_recording,
          "X": recording.data[None, :, :800].copy(), "Z": np.zeros((1, 22, 8)), "base": np.zeros((1, 275))}
    # M (mean moments of windows) comes from the running sums the example computes.
    code = code.replace("F = dec.features(M)", "M = (Q[:, 799] - Q[:, 49]) / 750\nF = dec.features(M)")
    exec(compile(code, "docs/decoders.md", "exec"), ns)  # noqa: S102 - our own documentation
    assert ns["proba"].shape == (1, 2) and np.isclose(ns["proba"].sum(), 1.0)
    assert ns["F"].shape == (1, ns["dec"].n_features)


def _readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Decoders", 1)[1].split("\n## ", 1)[0]
    cmds = []
    for block in _blocks(section, "bash"):
        for line in block.splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("bcistream "):
                cmds.append(shlex.split(line)[1:])
    return cmds


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_readme_decoder_commands_run(tmp_path, monkeypatch):
    from bcistream.data.synth import make_small_dataset

    data = tmp_path / "data"
    make_small_dataset(data, subjects=1, seed=5, n_trials_per_class=12)
    monkeypatch.setenv("BCISTREAM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BCISTREAM_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("BCISTREAM_WANDB_MODE", "disabled")
    cmds = _readme_commands()
    assert len(cmds) >= 4
    for args in cmds:
        # The README's data/ is the user's folder; here the small synthetic one, fewer trials.
        args = [str(data) if a == "data/" else a for a in args]
        if "--trials" in args:
            args[args.index("--trials") + 1] = "3"
        assert main(args) == 0, args
