"""Decoders as plug-ins: sklearn pipelines by name, each with a streaming twin proven equal to it.

``make_decoder(name, profile, **params)`` builds a pipeline (causal filter first);
``compile_streaming(fitted)`` derives the `StreamingDecoder` the engine runs. See docs/decoders.md.
"""

from bcistream.decoders.compile import compile_streaming, decoder_name, spatial_patterns
from bcistream.decoders.final import FinalStep, compile_final
from bcistream.decoders.registry import (
    DECODERS,
    DEFAULT_DECODER,
    DecoderSpec,
    build_pipeline,
    decoder_params,
    decoder_spec,
    make_decoder,
)
from bcistream.decoders.streaming import CovStreaming, CSPStreaming, StreamingDecoder

__all__ = [
    "DECODERS",
    "DEFAULT_DECODER",
    "CSPStreaming",
    "CovStreaming",
    "DecoderSpec",
    "FinalStep",
    "StreamingDecoder",
    "build_pipeline",
    "compile_final",
    "compile_streaming",
    "decoder_name",
    "decoder_params",
    "decoder_spec",
    "make_decoder",
    "spatial_patterns",
]
