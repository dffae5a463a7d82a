"""The engine's classification stage: due windows → features → one classifier call → decisions.

Kept apart from `bcistream.realtime.engine` (chunk placement and the filter path) so the step
after the due windows are known lives in one place: the windows' moments are read from the pool,
turned into the model's features (flat windows skipped), classified in ONE call through the
`Classifier` seam, and, when the classifier refuses the engine's model version, retried once
after a swap through the ``on_unknown_version`` hook. `Classification` is mixed into `Engine` and
works on its pool, model, classifier, counters and events.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.pipeline import Pipeline

from bcistream.errors import ProfileError
from bcistream.realtime.compute import make_decisions, window_moments
from bcistream.realtime.model import Model
from bcistream.realtime.protocols import Classifier, UnknownVersionError
from bcistream.realtime.records import Decision
from bcistream.realtime.streams import StreamPool

__all__ = ["Classification", "UnknownVersionHook"]

UnknownVersionHook = Callable[[str | None], "tuple[Pipeline, str] | None"]


class Classification:
    """Classification stage of the `Engine` (see the module docstring)."""

    # Provided by the engine (with its methods _event, _cue_lost and swap_model).
    pool: StreamPool
    window: int
    model: Model
    classifier: Classifier
    on_unknown_version: UnknownVersionHook | None
    _stats: dict[str, int]

    def _powers(self, due: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
        slots = np.fromiter((d[0].slot for d in due), dtype=np.int64, count=len(due))
        starts = np.fromiter((d[2] for d in due), dtype=np.int64, count=len(due))
        ends = np.fromiter((d[3] for d in due), dtype=np.int64, count=len(due))
        bases = np.fromiter((d[0].p_base for d in due), dtype=np.int64, count=len(due))
        return window_moments(self.pool, slots, starts, ends, bases, self.window)

    def _classify(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.classifier.classify(features, self.model.version)

    def _decide(self, due: list[tuple], moments: np.ndarray, ts: np.ndarray) -> list[Decision]:
        # A flat (zero-power) window has no features (log of zero): skip it, keep the others' batch.
        with np.errstate(divide="ignore", invalid="ignore"):
            features = self.model.features(moments)
            good = np.isfinite(features).all(axis=1)
        if not good.all():
            for i in np.flatnonzero(~good):
                self._event("skipped", due[i][0], reason="flat",
                            detail=f"window ending at {due[i][3]} has zero power: no features")
            keep = np.flatnonzero(good)
            due, features, ts = [due[i] for i in keep], features[keep], ts[keep]
            if not due:
                return []
        try:
            labels, proba = self._classify(features)
        except UnknownVersionError as exc:
            retried = self._retry_after_swap(due, exc)
            if retried is None:
                return []
            due, ts, labels, proba = retried
        except Exception as exc:  # noqa: BLE001 - a failing classifier costs this batch, not the engine
            self._classifier_error(len(due), exc)
            return []
        out = make_decisions(due, labels, proba, ts, self.model.classes, self.model.version)
        n_cue = sum(1 for d in due if d[1] == "cue")
        self._stats["decisions"] += len(out)
        self._stats["cue_decisions"] += n_cue
        self._stats["hop_decisions"] += len(out) - n_cue
        return out

    def _classifier_error(self, n: int, exc: BaseException) -> None:
        self._stats["classifier_errors"] += 1
        self._event("classifier", None, n, type(exc).__name__,
                    f"{n} due windows not decided: {type(exc).__name__}: {exc}")

    def _retry_after_swap(self, due: list[tuple], exc: UnknownVersionError) -> tuple | None:
        """Swap to the classifier's current version through the hook and classify again."""
        target = self.on_unknown_version(exc.current) if self.on_unknown_version else None
        if target is None:
            self._classifier_error(len(due), exc)
            return None
        try:
            self.swap_model(*target)
        except ProfileError as err:
            self._classifier_error(len(due), err)
            return None
        ring = self.pool.ring
        keep = []
        for d in due:
            st, start = d[0], d[2]
            if start >= st.valid_from and start >= st.p_base and start - 1 >= st.index - ring:
                keep.append(d)
            else:
                self._cue_lost(st, "swap", f"window ending at {d[3]} cannot be rebuilt after the swap")
        if not keep:
            return None
        moments, ts = self._powers(keep)
        try:
            with np.errstate(divide="ignore", invalid="ignore"):
                features = self.model.features(moments)
            labels, proba = self._classify(features)
        except Exception as err:  # noqa: BLE001
            self._classifier_error(len(keep), err)
            return None
        return keep, ts, labels, proba
