"""In-memory source over recordings and a list sink: the engine loop without any transport."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from bcistream.data.recording import Recording
from bcistream.realtime.protocols import Batch, Chunk, Marker
from bcistream.realtime.records import Decision

__all__ = ["ListSink", "MemorySource"]


class MemorySource:
    """Replay recordings as streams of chunks, with cue markers, as fast as polled.

    Parameters
    ----------
    recordings : Recording, mapping or sequence of (stream id, Recording)
        A single recording is stream ``"s0"``.
    chunk_size : int or sequence of int
        Samples per chunk; a sequence is cycled through (per stream).
    chunks_per_poll : int, optional
        Chunks returned by one `poll` (default: as many as there are streams).
    interleave : {"round-robin", "random"}
        Order in which the streams' chunks are emitted (each stream's own order is kept).
    seed : int, optional
        Seed of the random interleaving.
    cues : bool
        Emit a `Marker` per cue of ``rec.cues``.
    marker_by : {"sample", "timestamp"}
        Position markers by sample index or by source timestamp.
    marker_lag : int
        The marker is emitted with the chunk holding sample ``cue + marker_lag`` (negative: before
        its samples arrive).
    timestamps, seq : bool
        Attach source timestamps (``t0 + index / sfreq``) / sequence numbers to chunks.
    missing : {"drop", "send"}
        NaN samples are left out (the stream has a gap, as an amplifier dropping samples) or sent.
    dtype : numpy dtype
        Sample type of the chunks.
    clock : callable
        Arrival clock (default ``time.monotonic``).
    """

    def __init__(self, recordings: Recording | Mapping[str, Recording] | Sequence[tuple[str, Recording]],
                 chunk_size: int | Sequence[int] = 25, *, chunks_per_poll: int | None = None,
                 interleave: str = "round-robin", seed: int | None = None, cues: bool = True,
                 marker_by: str = "sample", marker_lag: int = 0, timestamps: bool = True,
                 seq: bool = True, missing: str = "drop", t0: float = 1000.0,
                 dtype: Any = np.float64, clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(recordings, Recording):
            items = [("s0", recordings)]
        elif isinstance(recordings, Mapping):
            items = list(recordings.items())
        else:
            items = list(recordings)
        if interleave not in ("round-robin", "random"):
            raise ValueError(f"interleave must be 'round-robin' or 'random', got {interleave!r}")
        if marker_by not in ("sample", "timestamp"):
            raise ValueError(f"marker_by must be 'sample' or 'timestamp', got {marker_by!r}")
        if missing not in ("drop", "send"):
            raise ValueError(f"missing must be 'drop' or 'send', got {missing!r}")
        sizes = [chunk_size] if isinstance(chunk_size, int) else [int(s) for s in chunk_size]
        if not sizes or min(sizes) < 1:
            raise ValueError(f"chunk sizes must be >= 1, got {chunk_size}")
        self._clock, self._dtype, self._t0 = clock, dtype, t0
        self._with_ts, self._with_seq = timestamps, seq
        per_stream = [self._plan(sid, rec, sizes, cues, marker_by, marker_lag, missing)
                      for sid, rec in items]
        self._events = self._interleave(per_stream, interleave, seed)
        self._per_poll = chunks_per_poll or max(1, len(items))
        self._pos = 0
        self.committed: Any = None
        self.closed = False

    def _plan(self, sid: str, rec: Recording, sizes: list[int], cues: bool, marker_by: str, lag: int,
              missing: str) -> list[tuple]:
        n = rec.n_samples
        bounds, start, i = [], 0, 0
        while start < n:
            stop = min(n, start + sizes[i % len(sizes)])
            bounds.append((start, stop))
            start, i = stop, i + 1
        if missing == "drop":
            good = ~np.isnan(rec.data).any(axis=0)
            split: list[tuple[int, int]] = []
            for a, b in bounds:
                edges = np.flatnonzero(np.diff(np.concatenate([[0], good[a:b].astype(np.int8), [0]])))
                split.extend((a + s, a + e) for s, e in zip(edges[::2], edges[1::2], strict=True))
            bounds = split
        markers: dict[int, list[Marker]] = {}
        if cues:
            stops = np.array([b for _, b in bounds])
            for cue in rec.cues:
                at = min(int(np.searchsorted(stops, cue.sample + lag, side="right")), len(bounds) - 1)
                if marker_by == "sample":
                    mk = Marker(sid, cue.label, sample=int(cue.sample))
                else:
                    mk = Marker(sid, cue.label, timestamp=self._t0 + cue.sample / rec.sfreq)
                markers.setdefault(max(at, 0), []).append(mk)
        return [(sid, rec, a, b, markers.get(j, [])) for j, (a, b) in enumerate(bounds)]

    @staticmethod
    def _interleave(per_stream: list[list[tuple]], how: str, seed: int | None) -> list[tuple]:
        if how == "round-robin":
            longest = max((len(p) for p in per_stream), default=0)
            return [p[j] for j in range(longest) for p in per_stream if j < len(p)]
        rng = np.random.default_rng(seed)
        owner = (np.concatenate([np.full(len(p), i) for i, p in enumerate(per_stream)]) if per_stream
                 else np.zeros(0, dtype=int))
        rng.shuffle(owner)
        cursors = [0] * len(per_stream)
        out = []
        for i in owner:
            out.append(per_stream[i][cursors[i]])
            cursors[i] += 1
        return out

    @property
    def exhausted(self) -> bool:
        """True when every chunk has been polled."""
        return self._pos >= len(self._events)

    def poll(self, timeout: float = 0.0) -> Batch:
        """The next chunks (and the markers due with them); never blocks."""
        batch = Batch()
        arrival = self._clock()
        for sid, rec, a, b, markers in self._events[self._pos:self._pos + self._per_poll]:
            batch.markers.extend(markers)
            ts = self._t0 + np.arange(a, b) / rec.sfreq if self._with_ts else None
            batch.chunks.append(Chunk(sid, rec.data[:, a:b].astype(self._dtype), ts,
                                      a if self._with_seq else None, arrival))
        self._pos += self._per_poll
        return batch

    def resume_point(self) -> int:
        """Number of chunks polled so far."""
        return min(self._pos, len(self._events))

    def commit(self, point: Any) -> None:
        """Remember the committed position."""
        self.committed = point

    def close(self) -> None:
        """Nothing to release."""
        self.closed = True


class ListSink:
    """Collects decisions in a list; counts flushes."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self.flushes = 0
        self.closed = False

    def write(self, decisions: Sequence[Decision]) -> None:
        """Append decisions."""
        self.decisions.extend(decisions)

    def flush(self) -> None:
        """Count the flush."""
        self.flushes += 1

    def close(self) -> None:
        """Mark closed."""
        self.closed = True
