"""The causal filters every decoder starts with, the default pipeline (bandpass -> CSP -> SVM) and
the epochs pipelines are trained on.

Everything that decodes imports its filter from here; no other module holds a filter, a channel
order or a class list of its own. The other decoders are in `bcistream.decoders`.
"""

from bcistream.pipeline.epochs import Epochs, epochs_from_recording, filter_recording
from bcistream.pipeline.factory import (
    DEFAULT_PARAMS,
    csp_filters,
    make_pipeline,
    pipeline_band,
    pipeline_profile,
    power_to_features,
)
from bcistream.pipeline.filter import CausalBandpass
from bcistream.pipeline.filterbank import CausalFilterBank
from bcistream.pipeline.fitting import (
    check_trials_per_class,
    class_order,
    decode_filtered,
    fit_filtered,
    min_trials_per_class,
)

__all__ = [
    "DEFAULT_PARAMS",
    "CausalBandpass",
    "CausalFilterBank",
    "Epochs",
    "check_trials_per_class",
    "class_order",
    "csp_filters",
    "decode_filtered",
    "epochs_from_recording",
    "filter_recording",
    "fit_filtered",
    "make_pipeline",
    "pipeline_band",
    "min_trials_per_class",
    "pipeline_profile",
    "power_to_features",
]
