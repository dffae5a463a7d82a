"""Adapters to the outside world: LSL inlets/outlets, Kafka consumer/producer, the wire format.

Heavy clients (pylsl, kafka-python) are imported by the submodules that need them, so importing
this package stays cheap.
"""

from bcistream.streamer.sinks import FilteredSink, JsonlSink, StdoutSink
from bcistream.streamer.wire import WireError, decode_chunk, decode_marker, encode_chunk, encode_marker

__all__ = ["FilteredSink", "JsonlSink", "StdoutSink", "WireError", "decode_chunk", "decode_marker",
           "encode_chunk", "encode_marker"]
