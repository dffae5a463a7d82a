"""Figures of a training run: the confusion matrix and the CSP patterns as scalp maps (PNG files).

Figures are built on `matplotlib.figure.Figure` objects (no pyplot state, no display needed).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline

from bcistream.decoders import decoder_name, spatial_patterns
from bcistream.pipeline import pipeline_profile

__all__ = ["confusion_png", "topomap_png"]

log = logging.getLogger(__name__)


def confusion_png(confusion: np.ndarray, classes: list[str], path: Path, title: str = "") -> Path:
    """Write a confusion matrix (rows true, columns predicted) as a PNG; return ``path``."""
    from matplotlib.figure import Figure

    conf = np.asarray(confusion, dtype=float)
    rows = conf.sum(axis=1, keepdims=True)
    frac = np.divide(conf, rows, out=np.zeros_like(conf), where=rows > 0)
    fig = Figure(figsize=(4.2, 3.8), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=30)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(conf.shape[0]):
        for j in range(conf.shape[1]):
            ax.text(j, i, f"{int(conf[i, j])}", ha="center", va="center",
                    color="white" if frac[i, j] > 0.5 else "black")
    ax.set_title(title or "confusion (T→E)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _montage_name(mne) -> str:
    # MNE 1.13 renamed the standard 10-20 montage (the old name warns, and goes in 1.14).
    names = mne.channels.get_builtin_montages()
    return "colin27_1020" if "colin27_1020" in names else "standard_1020"


def topomap_png(pipe: Pipeline, path: Path) -> tuple[Path | None, str]:
    """Write the fitted CSP patterns as scalp maps (MNE's standard 10-20 montage).

    Returns
    -------
    path : Path or None
        ``None`` when the profile's channels have no positions in the montage.
    note : str
        Why the maps were skipped, or ``""``.
    """
    import mne
    from matplotlib.figure import Figure

    prof = pipeline_profile(pipe)
    montage = mne.channels.make_standard_montage(_montage_name(mne))
    known = {name.lower() for name in montage.ch_names}
    missing = [ch for ch in prof.channels if ch.lower() not in known]
    if missing:
        note = (f"CSP scalp maps skipped: channels {missing[:5]} of profile '{prof.name}' have no "
                "position in the standard 10-20 montage")
        log.info(note)
        return None, note
    patterns = spatial_patterns(pipe)
    if patterns is None:
        note = f"CSP scalp maps skipped: decoder '{decoder_name(pipe)}' has no single set of CSP patterns"
        log.info(note)
        return None, note
    info = mne.create_info(list(prof.channels), prof.sfreq, "eeg")
    info.set_montage(montage, match_case=False, verbose="error")
    n = len(patterns)
    fig = Figure(figsize=(1.8 * n, 2.1), dpi=100)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for k, ax in enumerate(axes):
        # Linear interpolation: the default cubic one costs ~1 s per map and looks the same here.
        mne.viz.plot_topomap(patterns[k], info, axes=ax, show=False, contours=0, sensors=True,
                             image_interp="linear")
        ax.set_title(f"CSP {k + 1}", fontsize=9)
    fig.suptitle("CSP patterns", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path, ""
