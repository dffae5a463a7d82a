"""bcistream: real-time motor-imagery EEG decoding with online retraining.

The Python API, in the style of MNE and scikit-learn::

    import bcistream as bs

    rec = bs.load_recording("A01T.gdf")                     # a Recording in volts, cues by class name
    pipe = bs.make_pipeline(rec.profile)                     # causal bandpass → CSP → SVM (unfitted)
    epochs = bs.epochs_from_recording(rec)                   # filtered continuously, then cut
    pipe.fit(epochs.X, epochs.y)                             # any sklearn tool works on it
    engine = bs.Engine(pipe)                                 # the streaming twin, chunk by chunk
    bs.run_live(bs.LiveConfig(source="lsl:amp1", sinks=["stdout"]), pipeline=pipe)

Names are imported on first use, so ``import bcistream`` stays fast and loads neither MNE,
scikit-learn, MLflow, BentoML nor liblsl.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name → the module that defines it (imported on first access).
_EXPORTS: dict[str, str] = {
    # data
    "Profile": "bcistream.data.profiles",
    "load_profile": "bcistream.data.profiles",
    "Recording": "bcistream.data.recording",
    "Cue": "bcistream.data.recording",
    "load_recording": "bcistream.data.loader",
    "recording_from_raw": "bcistream.data.loader",
    # the decoding pipeline
    "make_pipeline": "bcistream.pipeline.factory",
    "Epochs": "bcistream.pipeline.epochs",
    "epochs_from_recording": "bcistream.pipeline.epochs",
    "filter_recording": "bcistream.pipeline.epochs",
    "CausalBandpass": "bcistream.pipeline.filter",
    "fit_filtered": "bcistream.pipeline.fitting",
    "profile_from": "bcistream.pipeline.factory",
    # decoders as plug-ins
    "DECODERS": "bcistream.decoders.registry",
    "make_decoder": "bcistream.decoders.registry",
    "compile_streaming": "bcistream.decoders.compile",
    # the streaming engine
    "Engine": "bcistream.realtime.engine",
    "EngineConfig": "bcistream.realtime.config",
    "Decision": "bcistream.realtime.records",
    "Chunk": "bcistream.realtime.protocols",
    "Marker": "bcistream.realtime.protocols",
    "Batch": "bcistream.realtime.protocols",
    "MemorySource": "bcistream.realtime.memory",
    "ListSink": "bcistream.realtime.memory",
    # sources and sinks of the outside world
    "LslSource": "bcistream.streamer.lsl_source",
    "KafkaSource": "bcistream.streamer.kafka_source",
    "JsonlSink": "bcistream.streamer.sinks",
    "StdoutSink": "bcistream.streamer.sinks",
    "LslDecisionSink": "bcistream.streamer.lsl_sink",
    "LslProbabilitySink": "bcistream.streamer.lsl_sink",
    "LslLabelSink": "bcistream.streamer.lsl_sink",
    "KafkaDecisionSink": "bcistream.streamer.kafka_sink",
    # the live system
    "LiveConfig": "bcistream.live.config",
    "LiveSystem": "bcistream.live.system",
    "LiveSummary": "bcistream.live.system",
    "run_live": "bcistream.live.system",
    # registry and service
    "load_model": "bcistream.training.registry",
    "Client": "bcistream.serving.client",
    # errors
    "BcistreamError": "bcistream.errors",
}

__all__ = ["__version__", "Batch", "BcistreamError", "CausalBandpass", "Chunk", "Client", "Cue", "DECODERS",
           "Decision", "Engine", "EngineConfig", "Epochs", "JsonlSink", "KafkaDecisionSink", "KafkaSource",
           "ListSink", "LiveConfig", "LiveSummary", "LiveSystem", "LslDecisionSink", "LslLabelSink",
           "LslProbabilitySink", "LslSource", "Marker", "MemorySource", "Profile", "Recording",
           "StdoutSink", "compile_streaming", "epochs_from_recording", "filter_recording", "fit_filtered",
           "load_model", "load_profile", "load_recording", "make_decoder", "make_pipeline", "profile_from",
           "recording_from_raw", "run_live"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bcistream' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:  # what type checkers and IDEs see; nothing is imported at run time
    from bcistream.data.loader import load_recording, recording_from_raw
    from bcistream.data.profiles import Profile, load_profile
    from bcistream.data.recording import Cue, Recording
    from bcistream.decoders.compile import compile_streaming
    from bcistream.decoders.registry import DECODERS, make_decoder
    from bcistream.errors import BcistreamError
    from bcistream.live.config import LiveConfig
    from bcistream.live.system import LiveSummary, LiveSystem, run_live
    from bcistream.pipeline.epochs import Epochs, epochs_from_recording, filter_recording
    from bcistream.pipeline.factory import make_pipeline, profile_from
    from bcistream.pipeline.filter import CausalBandpass
    from bcistream.pipeline.fitting import fit_filtered
    from bcistream.realtime.config import EngineConfig
    from bcistream.realtime.engine import Engine
    from bcistream.realtime.memory import ListSink, MemorySource
    from bcistream.realtime.protocols import Batch, Chunk, Marker
    from bcistream.realtime.records import Decision
    from bcistream.serving.client import Client
    from bcistream.streamer.kafka_sink import KafkaDecisionSink
    from bcistream.streamer.kafka_source import KafkaSource
    from bcistream.streamer.lsl_sink import LslDecisionSink, LslLabelSink, LslProbabilitySink
    from bcistream.streamer.lsl_source import LslSource
    from bcistream.streamer.sinks import JsonlSink, StdoutSink
    from bcistream.training.registry import load_model
