"""Rebuild every stream's filter state and running sums for a new model from its raw ring."""

from __future__ import annotations

import numpy as np

from bcistream.realtime.model import Model
from bcistream.realtime.streams import StreamPool, StreamState

__all__ = ["rebuild_streams"]

#: Streams rebuilt per vectorised step (bounds the temporary memory).
_BATCH = 128


def rebuild_streams(pool: StreamPool, streams: list[StreamState], model: Model, window: int,
                    preroll: int) -> None:
    """Refilter each stream's raw history with ``model``'s streaming decoder.

    The filter restarts from zero state at the oldest raw sample of the stream's current segment
    that is still kept. When the whole segment is in the ring this equals continuous
    filtering exactly; otherwise windows must start ``preroll`` samples later, after the zero-state
    transient has died out, and ``valid_from`` is moved accordingly.
    """
    by_len: dict[int, list[StreamState]] = {}
    for st in streams:
        if st.fresh:
            continue
        length = min(st.index - st.seg_start, st.history_n)
        by_len.setdefault(length, []).append(st)
    dec = model.decoder
    for length, group in by_len.items():
        for i in range(0, len(group), _BATCH):
            part = group[i:i + _BATCH]
            slots = np.array([st.slot for st in part])
            if length == 0:
                pool.zi[slots] = 0.0
                pool.qlast[slots] = 0.0
            else:
                idx = np.array([st.index - length for st in part])[:, None] + np.arange(length)
                raw = np.stack([st.raw_tail(length) for st in part])  # (G, C, L)
                Y, _ok = dec.project(raw)
                G = len(part)
                Zf, Q = dec.advance(np.zeros((G, dec.n_signals, dec.n_state)),
                                    np.zeros((G, dec.n_moments)), Y)
                pool.zi[slots] = Zf
                pool.qlast[slots] = Q[:, -1, :]
                pool.sums[slots[:, None], idx % pool.ring] = Q
            for st in part:
                st.p_base = st.index - length
                exact = st.index - st.seg_start <= st.history_n
                st.valid_from = st.seg_start if exact else st.p_base + preroll
