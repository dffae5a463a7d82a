"""Recordings of a small rig (3 channels C3/Cz/C4, left vs right) in every layout users bring.

The signals come from the synthetic 2a generator (subject 1), cut down to the rig's montage and
two classes, so a decoder can learn them; the layouts are written by the real writers (MNE/edfio
EDF, mne-bids, the XDF spec via `tests.xdf_writer`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

RIG_PROFILE = """\
name = "my-rig"
channels = ["C3", "Cz", "C4"]
sfreq = 250.0
band = [8.0, 30.0]
window_s = 3.0
offset_s = 0.5
[classes]
left = "left"
right = "right"
"""

MARKERS = {"769": "left", "770": "right"}
TRUE = {1: "left", 2: "right"}


def rig_session(session: str, seed: int = 0, n_trials_per_class: int = 12):
    """One session as an MNE Raw: 3 channels, cues annotated 'left'/'right' (others dropped)."""
    import mne

    from bcistream.data.synth import synthesize_session

    raw = synthesize_session(1, session, seed, n_trials_per_class=n_trials_per_class)
    labels = [int(c) for c in raw.info["description"].split(":", 1)[1]]
    raw.pick(["EEG-C3", "EEG-Cz", "EEG-C4"]).rename_channels(
        {"EEG-C3": "C3", "EEG-Cz": "Cz", "EEG-C4": "C4"})
    onsets, descs, k = [], [], 0
    for onset, desc in zip(raw.annotations.onset, raw.annotations.description, strict=True):
        if desc in ("769", "770", "771", "772", "783"):
            label = TRUE.get(labels[k])
            k += 1
            if label is not None:
                onsets.append(onset - raw.first_time)
                descs.append(label)
    raw.set_meas_date(None)
    raw.set_annotations(mne.Annotations(onsets, [0.0] * len(onsets), descs))
    raw.info["description"] = None
    return raw


def split_runs(raw, n_runs: int) -> list:
    """Cut a session into ``n_runs`` consecutive runs (each keeps its own annotations)."""
    edges = np.linspace(0, raw.times[-1], n_runs + 1)
    return [raw.copy().crop(edges[i], edges[i + 1], include_tmax=False) for i in range(n_runs)]


def write_edf(raw, path: Path) -> Path:
    import mne

    mne.export.export_raw(path, raw, fmt="edf", overwrite=True, verbose="error")
    return path


def write_runs(folder: Path, seed: int = 0) -> dict[str, list[Path]]:
    """``S001R01.edf``…``S001R04.edf``: runs 1–2 from session T, runs 3–4 from session E."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, list[Path]] = {"T": [], "E": []}
    run = 1
    for session in ("T", "E"):
        for part in split_runs(rig_session(session, seed), 2):
            out[session].append(write_edf(part, folder / f"S001R{run:02d}.edf"))
            run += 1
    return out


def write_xdf_sessions(folder: Path, seed: int = 0, **kwargs) -> dict[str, Path]:
    """``rig_T.xdf`` and ``rig_E.xdf`` (EEG in microvolts + a marker stream)."""
    from tests.xdf_writer import xdf_from_raw

    folder.mkdir(parents=True, exist_ok=True)
    return {s: xdf_from_raw(folder / f"rig_{s}.xdf", rig_session(s, seed), **kwargs) for s in ("T", "E")}


def write_bids(root: Path, seed: int = 0, subjects: tuple[str, ...] = ("01",)) -> Path:
    """A BIDS tree: ``sub-XX/ses-T`` and ``ses-E``, task ``mi``, EDF with events.tsv."""
    from mne_bids import BIDSPath, write_raw_bids

    for sub in subjects:
        for session in ("T", "E"):
            raw = rig_session(session, seed + int(sub) - 1)
            path = BIDSPath(subject=sub, session=session, task="mi", run=1, datatype="eeg", root=root)
            tmp = root.parent / f".tmp-{sub}{session}.edf"
            write_edf(raw, tmp)
            import mne

            written = mne.io.read_raw_edf(tmp, preload=False, verbose="error")
            write_raw_bids(written, path, overwrite=True, verbose=False,
                           event_id={"left": 1, "right": 2})
            tmp.unlink()
    return root
