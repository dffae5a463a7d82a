"""Recorded trials back from a store: deduplicated, time-ordered, ready for training and evaluation.

Trials were written by the recorder of live streams (``bcistream.streamer.trial_writer``), one
object per trial. The listing is the truth: manifests only let `load_recorded` skip reading
trials older than ``since``. Each trial holds raw samples with pre-roll before its window; the
pipeline's own filter step (zero state, keeps the last window) turns them into training epochs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.pipeline import Pipeline

from bcistream.data.profiles import Profile
from bcistream.data.trial_format import TRIALS_PREFIX, RecordedTrial, decode_trial
from bcistream.errors import BcistreamError, DataError, ProfileError
from bcistream.pipeline import Epochs
from bcistream.storage import StorageError, Store, open_store

__all__ = ["RecordedTrials", "load_recorded", "parse_since"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordedTrials:
    """Labelled raw trials in time order (oldest first).

    Attributes
    ----------
    X : ndarray, shape (n, n_channels, n_times), float32
        Raw samples; the last ``window`` samples are the decoded window, the rest pre-roll.
    y : ndarray of str
        Class names.
    stream_ids, keys : list
        Stream of each trial; storage keys.
    cue_samples : ndarray of int
    recorded_at : ndarray of float
        Unix times the trials were complete.
    model_versions : list of str or None
        Model running when each trial was decided.
    decided : list of str or None
        The engine's cue decision of each trial (``None`` when it made none).
    profile : Profile
    skipped : dict
        Reason -> count of stored objects left out (unreadable, other profile, duplicates).
    """

    X: np.ndarray
    y: np.ndarray
    stream_ids: list[str]
    keys: list[str]
    cue_samples: np.ndarray
    recorded_at: np.ndarray
    model_versions: list[str | None]
    decided: list[str | None]
    profile: Profile | None
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.y))

    def subset(self, index: np.ndarray | slice) -> RecordedTrials:
        """The trials at ``index`` (order kept)."""
        idx = np.arange(len(self))[index]
        return RecordedTrials(
            X=self.X[idx], y=self.y[idx], stream_ids=[self.stream_ids[i] for i in idx],
            keys=[self.keys[i] for i in idx], cue_samples=self.cue_samples[idx],
            recorded_at=self.recorded_at[idx], model_versions=[self.model_versions[i] for i in idx],
            decided=[self.decided[i] for i in idx], profile=self.profile, skipped=dict(self.skipped),
        )

    def epochs(self, pipe: Pipeline) -> Epochs:
        """Filtered windows through the pipeline's own filter step (zero state over the pre-roll)."""
        filt = pipe[0]  # every decoder's first step is its causal filter
        if not hasattr(filt, "sos_"):
            filt.fit()
        X = filt.transform(np.asarray(self.X, dtype=np.float64))
        n = len(self)
        span = 0 if self.profile is None else self.profile.offset_samples + self.profile.window_samples
        return Epochs(X=X, y=np.asarray(self.y, dtype=object), cue_index=np.arange(n),
                      window_end=self.cue_samples + span)

    def online_accuracy(self) -> float | None:
        """Share of trials the engine decided correctly at the time (``None`` without decisions)."""
        hits = [d == y for d, y in zip(self.decided, self.y, strict=True) if d is not None]
        return float(np.mean(hits)) if hits else None


def parse_since(text: str | float | None) -> float | None:
    """``--since``: unix seconds, an ISO date/time (UTC unless it says otherwise), or ``None``."""
    if text is None or text == "":
        return None
    if isinstance(text, int | float):
        return float(text)
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise BcistreamError(f"--since: must be unix seconds or an ISO date/time, got '{text}'") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _manifest_times(store: Store, keys: list[str]) -> dict[str, float]:
    times: dict[str, float] = {}
    for key in keys:
        try:
            text = store.read_bytes(key).decode()
        except (StorageError, UnicodeDecodeError) as exc:
            log.warning("manifest %s unreadable (%s); using the listing", key, exc)
            continue
        for line in text.splitlines():
            try:
                row = json.loads(line)
                times[str(row["key"])] = float(row["recorded_at"])
            except (ValueError, KeyError, TypeError):
                continue
    return times


def load_recorded(store: str | Path | Store, since: str | float | None = None, *,
                  profile: Profile | None = None, cache_dir: Path | None = None) -> RecordedTrials:
    """Read every recorded trial of a store (``trials/...``), deduplicated and in time order.

    Parameters
    ----------
    store : str, Path or Store
        A folder or ``gs://bucket/prefix`` (see `bcistream.storage.open_store`).
    since : str or float, optional
        Only trials recorded at or after this time (unix seconds or ISO date/time).
    profile : Profile, optional
        Keep trials of streams with this profile (default: the profile of the first trial).
    cache_dir : Path, optional
        Download cache of a ``gs://`` store.

    Returns
    -------
    RecordedTrials
        Duplicates (same stream, cue sample and cue timestamp: a batch replayed after a restart)
        are kept once; trials whose pre-roll differs are cut to the shortest.
    """
    st = store if not isinstance(store, str | Path) else open_store(store, cache_dir=cache_dir)
    t_min = parse_since(since)
    listing = st.list(TRIALS_PREFIX)
    manifests = [k for k in listing if k.endswith("/manifest.jsonl")]
    known = _manifest_times(st, manifests) if t_min is not None else {}
    skipped: dict[str, int] = {}
    trials: list[tuple[str, RecordedTrial]] = []
    for key in listing:
        if not key.endswith(".npz"):
            continue
        if t_min is not None and key in known and known[key] < t_min:
            continue
        try:
            trial = decode_trial(st.read_bytes(key), key)
        except (DataError, StorageError) as exc:
            log.warning("skipping %s: %s", key, exc)
            skipped["unreadable"] = skipped.get("unreadable", 0) + 1
            continue
        if t_min is not None and trial.recorded_at < t_min:
            continue
        trials.append((key, trial))
    trials.sort(key=lambda kt: (kt[1].recorded_at, kt[1].stream_id, kt[1].cue_sample))
    kept, seen = [], set()
    prof = profile
    for key, trial in trials:
        if trial.key in seen:
            skipped["duplicate"] = skipped.get("duplicate", 0) + 1
            continue
        try:
            tp = Profile.from_dict(trial.profile, source=key)
            if prof is None:
                prof = tp
            else:
                prof.check_compatible(tp)
        except ProfileError:
            skipped["other profile"] = skipped.get("other profile", 0) + 1
            continue
        seen.add(trial.key)
        kept.append((key, trial))
    if not kept:
        return RecordedTrials(X=np.zeros((0, 0, 0), dtype=np.float32), y=np.array([], dtype=str),
                              stream_ids=[], keys=[], cue_samples=np.array([], dtype=np.int64),
                              recorded_at=np.array([]), model_versions=[], decided=[], profile=prof,
                              skipped=skipped)
    n_times = min(t.data.shape[1] for _, t in kept)
    X = np.stack([t.data[:, t.data.shape[1] - n_times:] for _, t in kept]).astype(np.float32, copy=False)
    return RecordedTrials(
        X=X, y=np.array([t.label for _, t in kept], dtype=str), stream_ids=[t.stream_id for _, t in kept],
        keys=[k for k, _ in kept], cue_samples=np.array([t.cue_sample for _, t in kept], dtype=np.int64),
        recorded_at=np.array([t.recorded_at for _, t in kept]),
        model_versions=[t.model_version for _, t in kept],
        decided=[None if not t.decision else t.decision.get("label") for _, t in kept],
        profile=prof, skipped=skipped,
    )
