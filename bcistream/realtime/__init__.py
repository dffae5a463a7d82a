"""The pure streaming core: filter state, windows, features, the engine loop. No I/O here."""

from bcistream.realtime.protocols import (
    Batch,
    Chunk,
    Classifier,
    Marker,
    Sink,
    Source,
    UnknownVersionError,
)
from bcistream.realtime.records import SCHEMA_VERSION, Decision

__all__ = ["SCHEMA_VERSION", "Batch", "Chunk", "Classifier", "Decision", "Marker", "Sink", "Source",
           "UnknownVersionError"]
