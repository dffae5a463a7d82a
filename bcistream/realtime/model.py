"""The fitted model as the engine uses it: the decoder's streaming twin and its classifier.

Everything is derived from the fitted pipeline by `bcistream.decoders.compile_streaming`; this
module names no pipeline step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.pipeline import Pipeline

from bcistream.data.profiles import Profile
from bcistream.decoders import StreamingDecoder, compile_streaming
from bcistream.decoders.blockfilter import BlockFilter
from bcistream.realtime.protocols import UnknownVersionError

__all__ = ["BlockFilter", "InProcessClassifier", "Model", "load_model"]


@dataclass
class Model:
    """One fitted model version, in the form the engine computes with.

    Attributes
    ----------
    pipeline : Pipeline
    version : str
    profile : Profile
    decoder : StreamingDecoder
        The streaming twin (projection, filter, running sums, features, numpy final step).
    classes : ndarray
        Class names in the classifier's column order.
    """

    pipeline: Pipeline
    version: str
    profile: Profile
    decoder: StreamingDecoder
    classes: np.ndarray

    @property
    def n_features(self) -> int:
        """Length of a feature vector."""
        return self.decoder.n_features

    def features(self, moments: np.ndarray) -> np.ndarray:
        """Mean moments of windows (n, n_moments) -> the pipeline's features (n, n_features)."""
        return self.decoder.features(moments)


def load_model(pipeline: Pipeline, version: str) -> Model:
    """Check a fitted pipeline and compile its streaming twin.

    Raises
    ------
    ProfileError
        The pipeline is not a fitted pipeline of a known decoder.
    """
    from bcistream.errors import ProfileError

    try:
        decoder = compile_streaming(pipeline)
    except ProfileError as exc:
        raise ProfileError(f"model version {version!r}: {exc}") from exc
    return Model(pipeline=pipeline, version=str(version), profile=decoder.profile, decoder=decoder,
                 classes=np.asarray(decoder.classes))


class InProcessClassifier:
    """The default classifier: the decoder's final step, evaluated with numpy in this process.

    Parameters
    ----------
    pipeline : Pipeline or StreamingDecoder
        The fitted pipeline (compiled here) or its already compiled twin.
    version : str
        The only version this classifier holds; any other raises `UnknownVersionError`.
    """

    def __init__(self, pipeline: Pipeline | StreamingDecoder, version: str) -> None:
        self.decoder = pipeline if isinstance(pipeline, StreamingDecoder) else compile_streaming(pipeline)
        self.version = str(version)
        self.classes = np.asarray(self.decoder.classes)
        self.n_features = self.decoder.n_features

    def classify(self, features: np.ndarray, version: str) -> tuple[np.ndarray, np.ndarray]:
        """Class names and probabilities for feature vectors (n, n_features)."""
        if str(version) != self.version:
            raise UnknownVersionError(str(version), self.version)
        proba = self.decoder.predict_proba(features)
        return self.classes[np.argmax(proba, axis=1)], proba
