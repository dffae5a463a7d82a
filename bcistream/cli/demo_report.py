"""The demo's summary: online cue-locked decisions against the offline pipeline on the same trials.

Pure computation plus figure writing; the orchestration lives in `demo_cmds`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix
from sklearn.pipeline import Pipeline

from bcistream.data.recording import Recording
from bcistream.live.stats import LatencyTally
from bcistream.pipeline import decode_filtered, filter_recording, pipeline_profile
from bcistream.realtime.records import Decision
from bcistream.training.scores import scores_from_confusion, wolpaw_itr

__all__ = ["DemoSummary", "latency_ms", "read_decisions", "summarize", "write_report"]


@dataclass
class DemoSummary:
    """What the demo measured (everything printed comes from here)."""

    model_version: str
    decisions: int
    cue_trials: int
    online_accuracy: float
    offline_accuracy: float
    agreement: float
    latency_p50_ms: float  #: chunk arrival → decision over every decision, as the run's line has it
    latency_p99_ms: float
    decisions_per_s: float
    misaligned_cues: int
    cues_expected: int = 0  #: cues of the replayed recording whose window fits in it
    cues_decided: int = 0  #: of those, how many got a live cue-locked decision
    online_kappa: float = float("nan")
    chance_upper95: float = float("nan")
    seconds_per_trial: float = float("nan")
    itr_bits_per_min: float = float("nan")


def read_decisions(path: Path) -> list[Decision]:
    """Decisions from a JSONL file written by ``bcistream run --to jsonl:PATH``."""
    if not path.exists():
        return []
    return [Decision.from_dict(json.loads(line)) for line in path.read_text().splitlines() if line]


def _cue_trials(decisions: list[Decision], rec: Recording) -> list[tuple[Decision, int]]:
    """Labelled cue decisions whose window sits exactly at a cue of the recording."""
    prof = rec.profile
    cue_at = {c.sample + prof.offset_samples + prof.window_samples: c for c in rec.cues}
    out = []
    for d in decisions:
        if d.trigger == "cue" and d.cue_label not in (None, "unknown") and d.window_end in cue_at:
            out.append((d, d.window_end))
    return out


def latency_ms(decisions: list[Decision]) -> tuple[float, float]:
    """(p50, p99) latency of every decision, by the live run's own tally (`LatencyTally`), so the
    report and the run's last line give the same figures (NaN without decisions)."""
    tally = LatencyTally()
    tally.add(d.latency_ms for d in decisions)
    return tally.percentile(50), tally.percentile(99)


def summarize(decisions: list[Decision], pipe: Pipeline, rec: Recording, version: str) -> DemoSummary:
    """Compare online cue decisions with the offline pipeline on the same windows.

    The offline labels come from the continuously filtered recording (`filter_recording`) cut at
    each decision's window end: the same samples the live engine held.
    """
    trials = _cue_trials(decisions, rec)
    n_cue = sum(d.trigger == "cue" and d.cue_label not in (None, "unknown") for d in decisions)
    win = pipeline_profile(pipe).window_samples
    filtered = filter_recording(pipe, rec)
    keep = [(d, end) for d, end in trials if np.isfinite(filtered[:, end - win : end]).all()]
    online = np.array([d.label for d, _ in keep])
    truth = np.array([d.cue_label for d, _ in keep])
    if keep:
        X = np.stack([filtered[:, end - win : end] for _, end in keep])
        offline, _ = decode_filtered(pipe, X)
    else:
        offline = np.array([])
    prof = rec.profile
    ends = {c.sample + prof.offset_samples + prof.window_samples for c in rec.cues}
    ends = {e for e in ends if e <= rec.n_samples}
    decided_ends = {d.window_end for d in decisions if d.trigger == "cue"} & ends
    p50, p99 = latency_ms(decisions)
    decided = np.array([d.decided for d in decisions]) if decisions else np.array([0.0])
    span = float(decided.max() - decided.min()) if len(decided) > 1 else 0.0
    classes = list(rec.profile.class_names)
    sc = scores_from_confusion(confusion_matrix(truth, online, labels=classes)) if keep else None
    starts = np.array(sorted(c.sample for c in rec.cues))
    # Time per selection for the ITR: the trial period (cue to next cue), as Wolpaw et al. define it.
    period = float(np.median(np.diff(starts)) / rec.sfreq) if len(starts) > 1 else float("nan")
    online_acc = float(np.mean(online == truth)) if keep else float("nan")
    return DemoSummary(
        online_kappa=sc.kappa if sc else float("nan"),
        chance_upper95=sc.chance_upper95 if sc else float("nan"),
        seconds_per_trial=period,
        itr_bits_per_min=wolpaw_itr(online_acc, len(classes), period),
        model_version=version,
        decisions=len(decisions),
        cue_trials=len(keep),
        online_accuracy=online_acc,
        offline_accuracy=float(np.mean(offline == truth)) if keep else float("nan"),
        agreement=float(np.mean(online == offline)) if keep else float("nan"),
        latency_p50_ms=p50,
        latency_p99_ms=p99,
        decisions_per_s=len(decisions) / span if span > 0 else float("nan"),
        misaligned_cues=n_cue - len(trials),
        cues_expected=len(ends),
        cues_decided=len(decided_ends),
    )


def write_report(folder: Path, summary: DemoSummary, decisions: list[Decision],
                 classes: list[str], sfreq: float, cue_offset_s: float | None = None) -> list[Path]:
    """Write summary.json, summary.md and the figures.

    Figures: the confusion matrix of cue-locked decisions (normalised per true class, accuracy,
    kappa, chance and its 95 % bound), the latency histogram, per-class probability traces of the
    sliding-window decisions around each cue (``decisions.png``; needs ``cue_offset_s``, the time
    from a cue to the end of its cue-locked window) and every cue-locked trial's probabilities
    (``trials.png``).
    """
    from matplotlib.figure import Figure

    from bcistream.training.plots import confusion_png

    folder.mkdir(parents=True, exist_ok=True)
    cue = [d for d in decisions if d.trigger == "cue" and d.cue_label in classes]
    paths = [confusion_png(confusion_matrix([d.cue_label for d in cue], [d.label for d in cue],
                                            labels=classes), classes, folder / "confusion.png",
                           title="online cue-locked decisions")]

    fig = Figure(figsize=(5, 3.2), dpi=100)
    ax = fig.add_subplot()
    ax.hist([d.latency_ms for d in decisions], bins=50, color="tab:blue")
    ax.set_xlabel("chunk arrival → decision (ms)")
    ax.set_ylabel("decisions")
    ax.set_title(f"latency p50 {summary.latency_p50_ms:.2f} ms, p99 {summary.latency_p99_ms:.2f} ms",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(folder / "latency.png")
    paths.append(folder / "latency.png")

    if cue_offset_s is not None:
        paths.append(_traces_png(folder / "decisions.png", decisions, classes, sfreq, cue_offset_s))
    paths.append(_trials_png(folder / "trials.png", cue, classes))

    (folder / "summary.json").write_text(json.dumps(asdict(summary), indent=2))
    lines = ["# bcistream demo", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k.replace('_', ' ')} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
              for k, v in asdict(summary).items()]
    lines += ["", "![confusion](confusion.png)", "![latency](latency.png)"]
    lines += ["![decisions](decisions.png)"] if cue_offset_s is not None else []
    lines += ["![trials](trials.png)"]
    (folder / "summary.md").write_text("\n".join(lines) + "\n")
    return paths


#: Seconds around a cue shown in the traces (before, after).
TRACE_SPAN_S = (-1.0, 6.0)
TRACE_BIN_S = 0.25


def _traces_png(path: Path, decisions: list[Decision], classes: list[str], sfreq: float,
                cue_offset_s: float) -> Path:
    """Mean sliding-window probability of each class around the cues, one panel per true class."""
    from matplotlib.figure import Figure

    hop: dict[str, list[Decision]] = {}
    for d in decisions:
        if d.trigger == "hop":
            hop.setdefault(d.stream_id, []).append(d)
    ends = {sid: np.array([d.window_end for d in ds]) for sid, ds in hop.items()}
    edges = np.arange(TRACE_SPAN_S[0], TRACE_SPAN_S[1] + TRACE_BIN_S, TRACE_BIN_S)
    centers = edges[:-1] + TRACE_BIN_S / 2
    k = len(classes)
    fig = Figure(figsize=(3.2 * k + 0.4, 4.0), dpi=110)
    axes = fig.subplots(1, k, sharey=True, squeeze=False)[0]
    colors = [f"C{i}" for i in range(k)]
    for ax, true in zip(axes, classes, strict=True):
        sums = np.zeros((len(centers), k))
        counts = np.zeros(len(centers))
        n_cues = 0
        for d in decisions:
            if d.trigger != "cue" or d.cue_label != true or d.stream_id not in hop:
                continue
            n_cues += 1
            cue_sample = d.window_end - cue_offset_s * sfreq
            rel = (ends[d.stream_id] - cue_sample) / sfreq  # decision time (window end) - cue
            for j in np.flatnonzero((rel >= edges[0]) & (rel < edges[-1])):
                b = min(int((rel[j] - edges[0]) // TRACE_BIN_S), len(centers) - 1)
                h = hop[d.stream_id][j]
                sums[b] += [h.probabilities.get(c, 0.0) for c in classes]
                counts[b] += 1
        with np.errstate(invalid="ignore"):
            mean = sums / counts[:, None]
        for i, c in enumerate(classes):
            ax.plot(centers, mean[:, i], color=colors[i], lw=2 if c == true else 1.2,
                    label=c if ax is axes[0] else None)
        ax.axvline(0, color="k", ls="--", lw=0.8)
        ax.axvline(cue_offset_s, color="0.4", ls=":", lw=0.8)
        ax.axhline(1 / k, color="0.7", lw=0.6)
        ax.set_title(f"true class: {true} ({n_cues} cues)", fontsize=9)
        ax.set_xlabel("window end − cue (s)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.25)
    axes[0].set_ylabel("mean p(class), sliding windows")
    fig.legend(loc="lower center", fontsize=8, ncols=k, frameon=False, title="p(class) of",
               title_fontsize=8)
    fig.suptitle("class probabilities around cues (dashed: cue; dotted: cue-locked decision; "
                 "grey: chance)", fontsize=9)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    fig.savefig(path)
    return path


def _trials_png(path: Path, cue: list[Decision], classes: list[str]) -> Path:
    """Every cue-locked decision: its class probabilities (rows = trials, grouped by true class)."""
    from matplotlib.figure import Figure

    order = sorted(cue, key=lambda d: (classes.index(d.cue_label), d.window_end))
    P = np.array([[d.probabilities.get(c, 0.0) for c in classes] for d in order]).reshape(-1, len(classes))
    n = len(order)
    fig = Figure(figsize=(4.6, min(2.0 + 0.12 * n, 30)), dpi=110)
    ax = fig.add_subplot()
    im = ax.imshow(P, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    for r, d in enumerate(order):
        ok = d.label == d.cue_label
        ax.text(len(classes) - 0.45, r, "✓" if ok else "✗", va="center", fontsize=7,
                color="tab:green" if ok else "tab:red")
    bounds = np.cumsum([sum(d.cue_label == c for d in order) for c in classes])[:-1]
    for b in bounds:
        ax.axhline(b - 0.5, color="w", lw=1.5)
    ticks = [int(np.mean([r for r, d in enumerate(order) if d.cue_label == c]))
             for c in classes if any(d.cue_label == c for d in order)]
    ax.set_yticks(ticks, [f"true {c}" for c in classes if any(d.cue_label == c for d in order)])
    ax.set_xticks(range(len(classes)), classes)
    ax.set_xlim(-0.5, len(classes) + 0.1)
    ax.set_xlabel("p(class) of the cue-locked decision")
    fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02, label="probability")
    ax.set_title(f"{n} cue-locked trials (✓ decided = true class)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return path
