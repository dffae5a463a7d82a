"""Plain sinks: stdout and JSON lines, and a filter that drops decisions another engine published."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from bcistream.errors import BcistreamError
from bcistream.realtime.protocols import Sink
from bcistream.realtime.records import Decision

__all__ = ["FilteredSink", "JsonlSink", "StdoutSink"]


class StdoutSink:
    """One JSON line per decision on a text stream (stdout by default)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout

    def write(self, decisions: Sequence[Decision]) -> None:
        """Print decisions as JSON lines."""
        for d in decisions:
            self._stream.write(d.to_json() + "\n")

    def flush(self) -> None:
        """Flush the stream."""
        self._stream.flush()

    def close(self) -> None:
        """Flush (stdout stays open)."""
        self.flush()


class JsonlSink:
    """Appends decisions to a JSON-lines file; `flush` makes them visible to readers."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():  # open() would say only "[Errno 21] Is a directory"
            raise BcistreamError(f"jsonl:{path}: is a folder; give a file path for the decisions")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, decisions: Sequence[Decision]) -> None:
        """Append decisions."""
        for d in decisions:
            self._file.write(d.to_json() + "\n")

    def flush(self) -> None:
        """Flush to the OS."""
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        if not self._file.closed:
            self._file.close()


class FilteredSink:
    """Passes decisions for which ``drop`` is false to ``sink`` (e.g. `KafkaSource.replayed`)."""

    def __init__(self, sink: Sink, drop: Callable[[Decision], bool]) -> None:
        self.sink = sink
        self.drop = drop
        self.dropped = 0

    def write(self, decisions: Sequence[Decision]) -> None:
        """Forward the decisions that are kept."""
        kept = [d for d in decisions if not self.drop(d)]
        self.dropped += len(decisions) - len(kept)
        if kept:
            self.sink.write(kept)

    def flush(self) -> None:
        """Flush the wrapped sink."""
        self.sink.flush()

    def close(self) -> None:
        """Close the wrapped sink."""
        self.sink.close()
