"""Chunk shape checks and splitting a batch into rounds (placement on the stream: `tracker`)."""

from __future__ import annotations

import numpy as np

from bcistream.realtime.protocols import Chunk

__all__ = ["check_chunk", "split_piece", "split_rounds"]


def split_piece(ch: Chunk, max_piece: int) -> tuple[Chunk, Chunk]:
    """The first ``max_piece`` samples of a chunk and the rest (seq and timestamps follow)."""
    data, ts = ch.data, ch.timestamps
    head = Chunk(ch.stream_id, data[:, :max_piece], None if ts is None else ts[:max_piece], ch.seq,
                 ch.arrival, ch.session, ch.units_declared)
    tail = Chunk(ch.stream_id, data[:, max_piece:], None if ts is None else ts[max_piece:],
                 None if ch.seq is None else ch.seq + max_piece, ch.arrival, ch.session, ch.units_declared)
    return head, tail


def split_rounds(chunks: list[Chunk], max_piece: int) -> list[list[Chunk]]:
    """Split a batch so that each round holds at most one chunk per stream, keeping each stream's order.

    When every stream appears once (the usual batch) the batch is one round as it is, and the
    engine cuts chunks longer than ``max_piece`` itself (`split_piece`); otherwise long chunks are
    cut into consecutive pieces here. Bounded pieces bound the work and temporary memory of one
    vectorised step.
    """
    if len({ch.stream_id for ch in chunks}) == len(chunks):
        return [chunks]
    rounds: list[list[Chunk]] = []
    count: dict[str, int] = {}
    for ch in chunks:
        data = ch.data
        n = data.shape[1] if isinstance(data, np.ndarray) and data.ndim == 2 else 0
        pieces = [ch]
        if n > max_piece:
            pieces = [Chunk(ch.stream_id, data[:, i:i + max_piece],
                            None if ch.timestamps is None else ch.timestamps[i:i + max_piece],
                            None if ch.seq is None else ch.seq + i, ch.arrival, ch.session,
                            ch.units_declared)
                      for i in range(0, n, max_piece)]
        for piece in pieces:
            r = count.get(piece.stream_id, 0)
            count[piece.stream_id] = r + 1
            if r == len(rounds):
                rounds.append([])
            rounds[r].append(piece)
    return rounds


def check_chunk(ch: Chunk, n_channels: int) -> str | None:
    """Reason to refuse a chunk for its shape, channel count or dtype (``None``: acceptable).

    Non-finite samples are checked later, for a whole group at once.
    """
    data = ch.data
    if not isinstance(data, np.ndarray) or data.ndim != 2:
        return "shape"
    if data.shape[0] != n_channels:
        return "channels"
    if data.dtype.kind != "f":
        return "dtype"
    if data.shape[1] == 0:
        return "empty"
    if ch.timestamps is not None and np.shape(ch.timestamps) != (data.shape[1],):
        return "timestamps"
    return None
