"""Accuracy of every registered decoder on the 9 synthetic subjects: T -> E and 5-fold CV on T.

Each decoder runs with its registry defaults (nothing tuned), on in-memory synthetic sessions
(`bcistream.data.synth.synthetic_recording`, seed 0, 72 trials per class and session; 4 classes,
chance 0.25). The generator is the project's own and was not changed for this comparison.
Writes ``decoder_accuracy.md`` beside the summary (``BCISTREAM_BENCH_OUT``, default
``bench-results``) and returns one summary row per decoder.
"""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

import numpy as np

SUBJECTS = 9
#: 9 subjects x 6 decoders x (5-fold CV + fit + score) on one core: ~30 min on the shared VM.
TIMEOUT_S = 3600


def evaluate_all(decoders: list[str], subjects: int = SUBJECTS, first: int = 1) -> dict[str, list[dict]]:
    """Per decoder, per subject: T->E accuracy and kappa, 5-fold CV on T (default parameters).

    What `evaluate_subject` does, with the filtered epochs of a session shared by the decoders
    that use the same causal filter (five of the six use the profile's 8-30 Hz band).
    """
    from bcistream.data.synth import synthetic_recording
    from bcistream.decoders import build_pipeline
    from bcistream.pipeline import epochs_from_recording, fit_filtered
    from bcistream.training.evaluation import cross_validate, score_epochs

    out: dict[str, list[dict]] = {d: [] for d in decoders}
    for s in range(first, subjects + 1):
        train = synthetic_recording(s, "T", seed=0)
        test = synthetic_recording(s, "E", seed=0)
        cache: dict[str, tuple] = {}
        for d in decoders:
            pipe = build_pipeline(train.profile, {"decoder": d})
            key = repr(sorted(pipe[0].get_params().items()))
            if key not in cache:
                cache.clear()  # one filter's epochs at a time (a filter bank's are large)
                cache[key] = (epochs_from_recording(pipe, train), epochs_from_recording(pipe, test))
            tr, te = cache[key]
            cv = cross_validate(pipe, tr, folds=5)
            fit_filtered(pipe, tr)
            sc = score_epochs(pipe, te)
            out[d].append({"subject": s, "accuracy": float(sc["accuracy"]), "kappa": float(sc["kappa"]),
                           "cv_mean": float(np.mean(cv))})
        del cache
        gc.collect()
    return out


def table(results: dict[str, list]) -> str:
    """Markdown: per decoder, mean (sd) over subjects of T->E accuracy, kappa and CV on T."""
    lines = ["| decoder | T→E accuracy | T→E kappa | CV on T | per subject T→E |",
             "|---|---|---|---|---|"]
    for d, rs in results.items():
        acc = np.array([r["accuracy"] for r in rs])
        kap = np.array([r["kappa"] for r in rs])
        cv = np.array([r["cv_mean"] for r in rs])
        per = " ".join(f"{a:.2f}" for a in acc)
        lines.append(f"| `{d}` | {acc.mean():.3f} ± {acc.std():.3f} | {kap.mean():.3f} | "
                     f"{cv.mean():.3f} ± {cv.std():.3f} | {per} |")
    return "\n".join(lines) + "\n"


def run() -> list[dict]:
    from bcistream.decoders import DECODERS

    started = time.monotonic()
    names = [n for n in os.environ.get("BCISTREAM_BENCH_DECODERS", ",".join(DECODERS)).split(",") if n]
    results = evaluate_all(names, int(os.environ.get("BCISTREAM_BENCH_SUBJECTS", SUBJECTS)))
    root = Path(__file__).resolve().parent.parent
    out = Path(os.environ.get("BCISTREAM_BENCH_OUT", root / "bench-results"))  # run_all sets it
    out.mkdir(parents=True, exist_ok=True)
    (out / "decoder_accuracy.md").write_text(table(results))
    took = f"{time.monotonic() - started:.0f} s"
    rows = []
    for d, rs in results.items():
        acc = float(np.mean([r["accuracy"] for r in rs]))
        cv = float(np.mean([r["cv_mean"] for r in rs]))
        rows.append({"id": f"accuracy_{d}", "measure": f"{d}: mean T→E accuracy over {len(rs)} synthetic "
                     f"subjects (CV on T {cv:.3f})", "value": round(acc, 4), "unit": "fraction",
                     "goal": None, "baseline": 0.25, "met": None, "details": took})
    return rows


if __name__ == "__main__":
    # python benchmarks/bench_decoder_accuracy.py FIRST LAST: those subjects, all decoders (to
    # split the work over cores by hand); prints the per-subject rows as JSON.
    import json
    import sys

    from bcistream.decoders import DECODERS

    print(json.dumps(evaluate_all(list(DECODERS), int(sys.argv[2]), int(sys.argv[1]))))
