"""Counters of a Kafka source, shared by the helpers that fill them (read by the live view and metrics)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

__all__ = ["KafkaSourceStats"]


@dataclass
class KafkaSourceStats:
    """Counters of a Kafka source (read by the live view and metrics)."""

    messages: int = 0
    bytes: int = 0
    markers: int = 0
    dead_letters: int = 0
    gaps: int = 0
    gap_samples: int = 0
    duplicates: int = 0
    restarts: int = 0
    seq_outliers: int = 0
    commits: int = 0
    commit_failures: int = 0
    rebalances: int = 0
    stalls: int = 0
    dead_letters_repeated: int = 0  #: records the previous owner of a partition had dead-lettered
    events: deque = field(default_factory=lambda: deque(maxlen=100))
