"""A recording -> a live stream (LSL or Kafka) at real-time pace or faster."""

from bcistream.replay.pacing import Pacer
from bcistream.replay.player import KafkaTarget, LslTarget, ReplayStats, replay

__all__ = ["KafkaTarget", "LslTarget", "Pacer", "ReplayStats", "replay"]
