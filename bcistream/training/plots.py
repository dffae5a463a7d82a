"""Figures of a training run: the confusion matrix and the CSP patterns as scalp maps (PNG files).

Figures are built on `matplotlib.figure.Figure` objects (no pyplot state, no display needed).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline

from bcistream.decoders import decoder_name, spatial_patterns
from bcistream.pipeline import pipeline_band, pipeline_profile

__all__ = ["confusion_png", "topomap_png"]

log = logging.getLogger(__name__)


def confusion_png(confusion: np.ndarray, classes: list[str], path: Path, title: str = "") -> Path:
    """Write a confusion matrix normalised per true class, with accuracy, kappa and chance; return ``path``.

    Parameters
    ----------
    confusion : ndarray, shape (k, k)
        Counts, rows true, columns predicted, in ``classes`` order.
    classes : list of str
    path : Path
    title : str
        First title line; the second states accuracy, Cohen's kappa, balanced chance level and
        its 95 % binomial upper bound (`bcistream.training.scores`).

    Notes
    -----
    Each cell shows the fraction of that true class's trials (colour and text) and the count.
    """
    from matplotlib.figure import Figure

    from bcistream.training.scores import scores_from_confusion

    conf = np.asarray(confusion, dtype=float)
    rows = conf.sum(axis=1, keepdims=True)
    frac = np.divide(conf, rows, out=np.zeros_like(conf), where=rows > 0)
    sc = scores_from_confusion(conf)
    fig = Figure(figsize=(5.4, 4.8), dpi=110)
    ax = fig.add_subplot()
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label("fraction of the true class")
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)),
                  [f"{c} (n={int(r)})" for c, r in zip(classes, rows[:, 0], strict=True)])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(conf.shape[0]):
        for j in range(conf.shape[1]):
            ax.text(j, i, f"{frac[i, j]:.0%}\n({int(conf[i, j])})", ha="center", va="center", fontsize=9,
                    color="white" if frac[i, j] > 0.55 else "black")
    ax.set_title(f"{title or 'confusion (T→E)'}\n{sc.line()}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _montage_name(mne) -> str:
    # MNE 1.13 renamed the standard 10-20 montage (the old name warns, and goes in 1.14).
    names = mne.channels.get_builtin_montages()
    return "colin27_1020" if "colin27_1020" in names else "standard_1020"


def _pattern_classes(pipe: Pipeline, X: np.ndarray | None, y: np.ndarray | None) -> list[str]:
    """Per CSP component, the class with the highest and the lowest mean feature ("↑left ↓right")."""
    if X is None or y is None or len(X) == 0:
        return []
    feats = pipe[1].transform(X)  # the CSP step (topomap_png draws CSP decoders only)
    y = np.asarray(y, dtype=str)
    names = [c for c in pipeline_profile(pipe).class_names if c in set(y)]
    means = np.stack([feats[y == c].mean(axis=0) for c in names])  # (n_classes, n_components)
    return [f"↑{names[int(np.argmax(means[:, k]))]} ↓{names[int(np.argmin(means[:, k]))]}"
            for k in range(feats.shape[1])]


def topomap_png(pipe: Pipeline, path: Path, X: np.ndarray | None = None,
                y: np.ndarray | None = None) -> tuple[Path | None, str]:
    """Write the fitted CSP patterns as scalp maps (MNE's standard 10-20 montage) with a colour bar.

    Parameters
    ----------
    pipe : Pipeline
        Fitted.
    path : Path
    X, y : ndarray, optional
        Filtered training windows (n, n_channels, window) and their class names: each map is then
        titled with the class whose mean feature is highest (↑) and lowest (↓) in that component.

    Returns
    -------
    path : Path or None
        ``None`` when the profile's channels have no positions in the montage.
    note : str
        Why the maps were skipped, or ``""``.

    Notes
    -----
    A pattern's sign and scale are arbitrary (CSP is defined up to both), so each map is divided
    by its largest absolute value: colours run from -1 to 1 on one shared colour bar.
    """
    import mne
    from matplotlib.figure import Figure

    prof = pipeline_profile(pipe)
    patterns = spatial_patterns(pipe)
    if patterns is None:
        note = f"CSP scalp maps skipped: decoder '{decoder_name(pipe)}' has no single set of CSP patterns"
        log.info(note)
        return None, note
    montage = mne.channels.make_standard_montage(_montage_name(mne))
    known = {name.lower() for name in montage.ch_names}
    missing = [ch for ch in prof.channels if ch.lower() not in known]
    if missing:
        note = (f"CSP scalp maps skipped: channels {missing[:5]} of profile '{prof.name}' have no "
                "position in the standard 10-20 montage")
        log.info(note)
        return None, note
    info = mne.create_info(list(prof.channels), prof.sfreq, "eeg")
    info.set_montage(montage, match_case=False, verbose="error")
    patterns = patterns / np.abs(patterns).max(axis=1, keepdims=True)
    tags = _pattern_classes(pipe, X, y)
    n = len(patterns)
    cols = min(n, 4)
    nrows = int(np.ceil(n / cols))
    fig = Figure(figsize=(2.3 * cols + 0.9, 2.5 * nrows + 0.5), dpi=110)
    grid = fig.add_gridspec(nrows, cols + 1, width_ratios=[1] * cols + [0.08])
    im = None
    for k in range(n):
        ax = fig.add_subplot(grid[k // cols, k % cols])
        # Linear interpolation: the default cubic one costs ~1 s per map and looks the same here.
        im, _ = mne.viz.plot_topomap(patterns[k], info, axes=ax, show=False, contours=0, sensors=True,
                                     image_interp="linear", vlim=(-1, 1), cmap="RdBu_r")
        ax.set_title(f"CSP {k + 1}" + (f"\n{tags[k]}" if tags else ""), fontsize=9)
    cax = fig.add_subplot(grid[:, cols])
    cbar = fig.colorbar(im, cax=cax)
    cbar.set_label("pattern (normalised, a.u.)", fontsize=8)
    band = pipeline_band(pipe)
    fig.suptitle(f"CSP patterns, {band[0]:g}–{band[1]:g} Hz"
                 + (" (↑/↓: class with the highest/lowest mean log-power)" if tags else ""), fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path, ""
