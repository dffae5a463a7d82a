"""The short markdown report of a training run, written into its run folder beside the figures."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bcistream.pipeline import pipeline_band
from bcistream.training.scores import scores_from_confusion

if TYPE_CHECKING:
    from bcistream.training.train import TrainedModel

__all__ = ["append_promotion", "write_report"]


def _band(models: list[TrainedModel]) -> tuple[float, float] | None:
    for m in models:
        if m.result.pipeline is not None:
            return pipeline_band(m.result.pipeline)
    return None


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def write_report(folder: Path, models: list[TrainedModel], params: dict[str, Any], data_url: str) -> Path:
    """Write ``report.md`` (summary table, parameters, figures, data fingerprint); return its path."""
    lines = [
        f"# Training run {folder.name}",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"- data: `{data_url}`",
        f"- models: {len(models)}",
        "",
        "| model | registered | T→E accuracy | kappa | CV on T | trials T/E | fit s |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in models:
        r = m.result
        lines.append(
            f"| {m.label} | `{m.name}` v{m.version} | {_fmt(r.accuracy)} | {_fmt(r.kappa)} | "
            f"{r.cv_mean:.3f} ± {r.cv_std:.3f} | {r.n_train}/{r.n_test} | {m.seconds:.1f} |"
        )
    band = _band(models)
    lines += ["", "## Parameters", "", "| parameter | value |", "|---|---|"]
    for k, v in params.items():
        if k in ("l_freq", "h_freq") and v is None and band is not None:
            # None means "the profile's band": say which band that was.
            lines.append(f"| {k} | `{band[0 if k == 'l_freq' else 1]:g}` Hz (profile band) |")
        else:
            lines.append(f"| {k} | `{v}` |")
    for m in models:
        lines += ["", f"## {m.label}", "", f"- MLflow run `{m.run_id}`, data sha256 `{m.data_digest[:16]}…`"]
        if m.result.pipeline is not None:
            low, high = pipeline_band(m.result.pipeline)
            lines.append(f"- band used: {low:g}–{high:g} Hz (causal Butterworth band-pass)")
        if m.result.confusion is not None:
            lines.append(f"- T→E: {scores_from_confusion(m.result.confusion).line()} "
                         "(chance: balanced; 95 %: binomial bound of a random classifier)")
        lines += [f"- note: {n}" for n in m.notes]
        for key, path in m.figures.items():
            lines += ["", f"![{key}]({path.relative_to(folder).as_posix()})"]
    path = folder / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def append_promotion(report: Path, label: str, summary: str) -> None:
    """Add a promotion decision to an existing report."""
    with report.open("a") as fh:
        if "## Promotion" not in report.read_text():
            fh.write("\n## Promotion\n\n")
        fh.write(f"- {label}: {summary}\n")
