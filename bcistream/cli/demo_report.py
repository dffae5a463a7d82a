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
from bcistream.pipeline import decode_filtered, filter_recording, pipeline_profile
from bcistream.realtime.records import Decision

__all__ = ["DemoSummary", "read_decisions", "summarize", "write_report"]


@dataclass
class DemoSummary:
    """What the demo measured (everything printed comes from here)."""

    model_version: str
    decisions: int
    cue_trials: int
    online_accuracy: float
    offline_accuracy: float
    agreement: float
    latency_p50_ms: float
    latency_p99_ms: float
    decisions_per_s: float
    misaligned_cues: int
    cues_expected: int = 0  #: cues of the replayed recording whose window fits in it
    cues_decided: int = 0  #: of those, how many got a live cue-locked decision


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
    lat = np.array([d.latency_ms for d in decisions]) if decisions else np.array([np.nan])
    decided = np.array([d.decided for d in decisions]) if decisions else np.array([0.0])
    span = float(decided.max() - decided.min()) if len(decided) > 1 else 0.0
    return DemoSummary(
        model_version=version,
        decisions=len(decisions),
        cue_trials=len(keep),
        online_accuracy=float(np.mean(online == truth)) if keep else float("nan"),
        offline_accuracy=float(np.mean(offline == truth)) if keep else float("nan"),
        agreement=float(np.mean(online == offline)) if keep else float("nan"),
        latency_p50_ms=float(np.percentile(lat, 50)),
        latency_p99_ms=float(np.percentile(lat, 99)),
        decisions_per_s=len(decisions) / span if span > 0 else float("nan"),
        misaligned_cues=n_cue - len(trials),
        cues_expected=len(ends),
        cues_decided=len(decided_ends),
    )


def write_report(folder: Path, summary: DemoSummary, decisions: list[Decision],
                 classes: list[str], sfreq: float) -> list[Path]:
    """Write summary.json, summary.md and the figures (confusion, latency, decisions over time)."""
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

    fig = Figure(figsize=(8, 3), dpi=100)
    ax = fig.add_subplot()
    hop = [d for d in decisions if d.trigger == "hop"]
    index = {c: i for i, c in enumerate(classes)}
    ax.scatter([d.window_end / sfreq for d in hop], [index.get(d.label, -1) for d in hop], s=1,
               color="0.6", label="sliding window")
    ok = [d for d in cue if d.label == d.cue_label]
    bad = [d for d in cue if d.label != d.cue_label]
    for group, color, name in ((ok, "tab:green", "cue, correct"), (bad, "tab:red", "cue, wrong")):
        ax.scatter([d.window_end / sfreq for d in group], [index[d.label] for d in group], s=12,
                   color=color, label=name)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("stream time (s)")
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "decisions.png")
    paths.append(folder / "decisions.png")

    (folder / "summary.json").write_text(json.dumps(asdict(summary), indent=2))
    lines = ["# bcistream demo", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k.replace('_', ' ')} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
              for k, v in asdict(summary).items()]
    lines += ["", "![confusion](confusion.png)", "![latency](latency.png)", "![decisions](decisions.png)"]
    (folder / "summary.md").write_text("\n".join(lines) + "\n")
    return paths
