"""Play a recording as a live stream: EEG chunks plus a marker stream of its cues.

Targets are LSL (an EEG outlet ``NAME`` with channel labels, units and type, plus a string marker
outlet ``NAME-markers``) or Kafka (chunks in the wire format on the raw topic, JSON markers on the
markers topic, both keyed by the stream id). Samples are sent in the profile's channel order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from bcistream.data.recording import Recording
from bcistream.replay.pacing import Pacer
from bcistream.streamer.lsl_source import MARKER_SUFFIX

__all__ = ["BEHIND_FRACTION", "BEHIND_S", "KafkaTarget", "LslTarget", "ReplayStats", "Target", "replay"]

log = logging.getLogger(__name__)

#: A replay has fallen behind the pace asked once a chunk leaves this many wall-clock seconds late
#: AND this fraction of the time so far late (its speed is then <= 95 % of the speed asked).
#: Scheduling jitter is milliseconds and a one-off stall is not a pace; a transport or CPU too slow
#: for the pace makes the lateness grow with the time.
BEHIND_S = 0.5
BEHIND_FRACTION = 0.05


class Target(Protocol):
    """Where replayed chunks and cues go."""

    def send(self, data: np.ndarray, seq: int, timestamp: float) -> None:
        """Send samples (n_channels, n) starting at sample ``seq`` with first-sample ``timestamp``."""
        ...

    def cue(self, sample: int, timestamp: float, label: str | None) -> None:
        """Send a cue at ``sample``."""
        ...

    def clock(self) -> float:
        """The transport's clock (timestamps start here)."""
        ...

    def flush(self) -> None:
        """Make sent data visible."""
        ...

    def close(self) -> None:
        """Release the transport."""
        ...


@dataclass
class ReplayStats:
    """What a replay did, and whether it kept the pace asked (updated after every chunk)."""

    chunks: int = 0
    samples: int = 0
    cues: int = 0
    loops: int = 0
    lateness: list[float] = field(default_factory=list)
    speed: float | None = None  #: real-time factor asked (None: as fast as possible)
    sfreq: float = 0.0
    wall_s: float = 0.0  #: wall-clock seconds since the replay started
    late_s: float = 0.0  #: how late the last chunk left (wall seconds)
    max_late_s: float = 0.0  #: the latest any chunk left
    fell_behind: bool = False  #: a chunk left `BEHIND_S` and `BEHIND_FRACTION` of the time late

    def jitter_p99_ms(self) -> float:
        """99th percentile of release lateness in ms (0 when unpaced)."""
        return float(np.percentile(self.lateness, 99) * 1e3) if self.lateness else 0.0

    def achieved_speed(self) -> float:
        """Seconds of recording sent per wall-clock second so far (NaN before any time passed)."""
        if self.wall_s <= 0 or self.sfreq <= 0:
            return float("nan")
        return self.samples / self.sfreq / self.wall_s

    def behind(self) -> bool:
        """Whether the replay fell behind the pace asked (see `BEHIND_S`), so far."""
        return self.fell_behind

    def pace(self) -> str:
        """Achieved against asked speed: ``19.6x of 30x asked`` (``412.0x, as fast as possible``)."""
        if self.speed is None:
            return f"{self.achieved_speed():.1f}x, as fast as possible"
        return f"{self.achieved_speed():.1f}x of {self.speed:g}x asked"


def replay(recording: Recording, target: Target, *, speed: float | None = 1.0, chunk: int = 10,
           loop: bool = False, stop: threading.Event | None = None,
           on_chunk: Callable[[ReplayStats], None] | None = None, flush_every: int = 64,
           pacer: Pacer | None = None) -> ReplayStats:
    """Send ``recording`` to ``target`` at ``speed`` x real time (``None``: as fast as possible).

    Sample ``k`` carries timestamp ``t0 + k / sfreq`` on the target's clock whatever the speed, so
    cue and window positions derived from timestamps stay exact. Chunk releases follow a monotonic
    schedule (`Pacer`): chunk ``j`` leaves when its last sample would exist.

    Parameters
    ----------
    recording : Recording
    target : Target
    speed : float or None
        Real-time factor, or ``None`` for as fast as the transport takes it.
    chunk : int
        Samples per chunk.
    loop : bool
        Start over at the end (sample numbers and timestamps keep increasing) until ``stop``.
    stop : threading.Event, optional
    on_chunk : callable, optional
        Called after each chunk with the running stats (``stats.behind()`` turns true once the
        replay cannot keep ``speed``; ``stats.pace()`` says how fast it goes).
    flush_every : int
        Chunks between flushes (waits for the transport's acknowledgements; paced or not).
    pacer : Pacer, optional
        The schedule (tests inject one on a fake clock); default: one on the monotonic clock with
        the period ``chunk / sfreq / speed``.

    Returns
    -------
    ReplayStats
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if speed is not None and speed <= 0:
        raise ValueError(f"speed must be > 0 or None (as fast as possible), got {speed}")
    stop = stop or threading.Event()
    sfreq = recording.sfreq
    data = recording.data
    n = recording.n_samples
    cues = sorted(recording.cues, key=lambda c: c.sample)
    pacer = pacer or Pacer(None if speed is None else chunk / sfreq / speed)
    t0 = target.clock()
    stats = ReplayStats(speed=speed, sfreq=sfreq)
    k = 0
    offset = 0
    while not stop.is_set():
        ci = 0
        for start in range(0, n, chunk):
            stop_at = min(start + chunk, n)
            base = offset + start
            while ci < len(cues) and cues[ci].sample < stop_at:
                s = offset + cues[ci].sample
                target.cue(s, t0 + s / sfreq, cues[ci].label)
                stats.cues += 1
                ci += 1
            late = pacer.wait(k, stop.is_set)
            if stop.is_set():
                break
            target.send(data[:, start:stop_at], base, t0 + base / sfreq)
            if k % flush_every == 0:
                # Waits for the broker's acks (and raises on a refusal). Not per chunk: a Kafka
                # producer with no linger sends at once anyway, and a round trip per chunk held a
                # paced replay to 51x when 200x was asked (482x unpaced) and to 12x of 30x under load.
                target.flush()
            k += 1
            stats.chunks += 1
            stats.samples += stop_at - start
            _keep_time(stats, pacer, late)
            if on_chunk is not None:
                on_chunk(stats)
        offset += n
        stats.loops += 1
        if not loop:
            break
    target.flush()
    _keep_time(stats, pacer, stats.late_s)
    stats.lateness = pacer.lateness
    return stats


def _keep_time(stats: ReplayStats, pacer: Pacer, late: float) -> None:
    """Record the wall time so far and the lateness of the chunk just sent."""
    stats.wall_s = pacer.clock() - pacer.start
    stats.late_s = max(late, 0.0)
    stats.max_late_s = max(stats.max_late_s, stats.late_s)
    if stats.speed is not None and stats.late_s >= max(BEHIND_S, BEHIND_FRACTION * stats.wall_s):
        stats.fell_behind = True


class LslTarget:
    """An LSL EEG outlet (microvolts, channel labels, type EEG) and its ``-markers`` outlet."""

    def __init__(self, name: str, recording: Recording, source_id: str | None = None,
                 chunk: int = 10) -> None:
        import pylsl

        self._pylsl = pylsl
        prof = recording.profile
        sid = source_id or f"bcistream-replay-{name}"
        info = pylsl.StreamInfo(name, "EEG", prof.n_channels, prof.sfreq, pylsl.cf_float32, sid)
        info.set_channel_labels(list(prof.channels))
        info.set_channel_types("EEG")
        info.set_channel_units("microvolts")
        info.desc().append_child_value("manufacturer", "bcistream replay")
        info.desc().append_child_value("source", str(recording.source))
        self.outlet = pylsl.StreamOutlet(info, chunk_size=chunk)
        minfo = pylsl.StreamInfo(name + MARKER_SUFFIX, "Markers", 1, pylsl.IRREGULAR_RATE,
                                 pylsl.cf_string, sid + MARKER_SUFFIX)
        self.markers = pylsl.StreamOutlet(minfo)
        self._buf: np.ndarray | None = None

    def wait_for_consumers(self, timeout: float) -> bool:
        """Wait until an inlet is connected to the EEG and marker outlets."""
        return bool(self.outlet.wait_for_consumers(timeout) and self.markers.wait_for_consumers(timeout))

    def clock(self) -> float:
        """LSL clock."""
        return self._pylsl.local_clock()

    def send(self, data: np.ndarray, seq: int, timestamp: float) -> None:
        """Push samples in microvolts; LSL stamps earlier samples back from the last one."""
        n = data.shape[1]
        samples = np.ascontiguousarray(data.T * 1e6, dtype=np.float32)
        self.outlet.push_chunk(samples, timestamp + (n - 1) / self.outlet.get_info().nominal_srate(),
                               True)

    def cue(self, sample: int, timestamp: float, label: str | None) -> None:
        """Push the class name (``"unknown"`` when unlabelled) at the cue's timestamp."""
        self.markers.push_sample([label or "unknown"], timestamp, True)

    def flush(self) -> None:
        """Chunks are pushed through on send."""

    def close(self) -> None:
        """Destroy the outlets."""
        self.outlet = None
        self.markers = None


def _make_topics(bootstrap: str, topics: list[str], kafka_config: dict[str, Any] | None) -> None:
    """Create the topics now (one partition each; existing ones are kept), best effort.

    A broker creates a topic at its first message otherwise: the marker topic only at the first
    cue, which is a minute into a BCI IV 2a session, and an engine started meanwhile warns that the
    topic is missing. A broker that refuses (no auto-creation rights) gets the messages as before.
    """
    from bcistream.streamer.kafka_topics import create_topics

    try:
        create_topics(bootstrap, {t: 1 for t in topics if t}, kafka_config)
    except Exception as exc:  # noqa: BLE001 - the producer's own errors say more if it matters
        log.debug("could not create %s: %s", topics, exc)


class KafkaTarget:
    """Chunks (wire format) and JSON cue markers to Kafka, keyed by ``stream_id``."""

    def __init__(self, bootstrap: str, stream_id: str, sfreq: float, topic: str = "eeg.raw",
                 markers_topic: str = "eeg.markers", kafka_config: dict[str, Any] | None = None) -> None:
        import time

        from bcistream.streamer.kafka_sink import KafkaChunkProducer

        self._time = time
        self.stream_id = stream_id
        self.sfreq = sfreq
        # A fresh session id per run (a replay is a new producer run) and the samples' unit.
        self.producer = KafkaChunkProducer(bootstrap, topic, markers_topic, kafka_config, units="volts")
        _make_topics(bootstrap, [topic, markers_topic], kafka_config)

    def clock(self) -> float:
        """Wall clock (Kafka consumers elsewhere share no LSL clock)."""
        return self._time.time()

    def send(self, data: np.ndarray, seq: int, timestamp: float) -> None:
        """Send one chunk."""
        self.producer.send_chunk(self.stream_id, data, self.sfreq, seq, timestamp)

    def cue(self, sample: int, timestamp: float, label: str | None) -> None:
        """Send one cue marker."""
        self.producer.send_marker(self.stream_id, sample, label)

    def flush(self) -> None:
        """Wait for acknowledgements."""
        self.producer.flush()

    def close(self) -> None:
        """Flush and close."""
        self.producer.close()
