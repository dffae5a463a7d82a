"""The fitted model as the engine uses it: CSP filters, the causal filter as a block operator, classifier.

Everything here is derived from the fitted pipeline (`csp_filters`, the filter step's ``sos_``,
the classifier's ``classes_``): no coefficient, channel order or class list is copied by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sklearn
from scipy.signal import sosfilt
from sklearn.pipeline import Pipeline

from bcistream.data.profiles import Profile
from bcistream.errors import ProfileError
from bcistream.pipeline import class_order, csp_filters, pipeline_profile, power_to_features
from bcistream.realtime.protocols import UnknownVersionError

__all__ = ["BlockFilter", "InProcessClassifier", "Model", "load_model"]

#: Chunks up to this length are filtered with one matrix product; longer ones with ``sosfilt``.
BLOCK_MAX = 64


class BlockFilter:
    """The pipeline's IIR filter (``sos``) applied to many short signals with one matrix product.

    A causal IIR filter is linear in (input block, state), so filtering ``n`` samples from state
    ``z`` is ``[x, z] @ M_n`` with ``M_n`` of shape ``(n + S, n + S)`` (``S = 2 * n_sections``).
    ``M_n`` is obtained by running ``scipy.signal.sosfilt`` with the pipeline's ``sos`` on unit
    inputs, so it is the same filter, not a redesign. States use ``sosfilt``'s layout
    (``zi[section, :, 0:2]`` flattened per signal), so both paths interoperate.

    Parameters
    ----------
    sos : ndarray, shape (n_sections, 6)
    """

    def __init__(self, sos: np.ndarray) -> None:
        self.sos = np.asarray(sos, dtype=np.float64)
        self.n_sections = self.sos.shape[0]
        self.n_state = 2 * self.n_sections
        self._mats: dict[int, np.ndarray] = {}

    def _matrix(self, n: int) -> np.ndarray:
        mat = self._mats.get(n)
        if mat is None:
            s = self.n_state
            x = np.zeros((n + s, n))
            x[:n, :n] = np.eye(n)
            zi = np.zeros((n + s, s))
            zi[n:, :] = np.eye(s)
            y, zf = sosfilt(self.sos, x, axis=-1, zi=self.to_sosfilt(zi))
            mat = np.hstack([y, self.from_sosfilt(zf)])
            self._mats[n] = mat
        return mat

    def to_sosfilt(self, z: np.ndarray) -> np.ndarray:
        """States (m, S) -> ``sosfilt`` zi of shape (n_sections, m, 2)."""
        return z.reshape(z.shape[0], self.n_sections, 2).transpose(1, 0, 2)

    def from_sosfilt(self, zi: np.ndarray) -> np.ndarray:
        """``sosfilt`` zi (n_sections, m, 2) -> states (m, S)."""
        return np.ascontiguousarray(zi.transpose(1, 0, 2)).reshape(zi.shape[1], self.n_state)

    def apply(self, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Filter ``m`` signals of ``n`` samples each.

        Parameters
        ----------
        x : ndarray, shape (m, n)
        z : ndarray, shape (m, S)
            States before ``x``.

        Returns
        -------
        y : ndarray, shape (m, n)
        zf : ndarray, shape (m, S)
        """
        n = x.shape[1]
        if n <= BLOCK_MAX:
            out = np.concatenate([x, z], axis=1) @ self._matrix(n)
            return out[:, :n], out[:, n:]
        y, zf = sosfilt(self.sos, x, axis=-1, zi=self.to_sosfilt(z))
        return y, self.from_sosfilt(zf)


@dataclass
class Model:
    """One fitted model version, in the form the engine computes with.

    Attributes
    ----------
    pipeline : Pipeline
    version : str
    profile : Profile
    filters : ndarray, shape (k, n_channels)
        The fitted CSP's spatial filters (`csp_filters`).
    block : BlockFilter
        The pipeline's causal filter.
    classes : ndarray
        Class names in the classifier's column order.
    """

    pipeline: Pipeline
    version: str
    profile: Profile
    filters: np.ndarray
    block: BlockFilter
    classes: np.ndarray

    @property
    def n_components(self) -> int:
        """Number of CSP features."""
        return int(self.filters.shape[0])

    def features(self, power: np.ndarray) -> np.ndarray:
        """Mean CSP-space power (n, k) -> the CSP step's features (`power_to_features`)."""
        return power_to_features(self.pipeline, power)


def load_model(pipeline: Pipeline, version: str) -> Model:
    """Check a fitted pipeline and derive the engine's view of it.

    Raises
    ------
    ProfileError
        The pipeline is not a fitted ``filter -> csp -> clf`` pipeline.
    """
    try:
        steps = pipeline.named_steps
        filt = steps["filter"]
        if not hasattr(filt, "sos_"):
            filt.fit()
        filters = np.asarray(csp_filters(pipeline), dtype=np.float64)
        classes, _ = class_order(pipeline)
    except (AttributeError, KeyError, TypeError) as exc:
        raise ProfileError(
            f"model version {version!r} is not a fitted filter -> csp -> clf pipeline ({exc})") from exc
    profile = pipeline_profile(pipeline)
    if filters.shape[1] != profile.n_channels:
        raise ProfileError(f"model version {version!r}: CSP filters have {filters.shape[1]} channels, "
                           f"profile has {profile.n_channels}")
    return Model(pipeline=pipeline, version=str(version), profile=profile,
                 filters=np.ascontiguousarray(filters), block=BlockFilter(filt.sos_), classes=classes)


class InProcessClassifier:
    """The default classifier: the fitted pipeline's own ``clf`` step, in this process.

    Parameters
    ----------
    pipeline : Pipeline
    version : str
        The only version this classifier holds; any other raises `UnknownVersionError`.
    """

    def __init__(self, pipeline: Pipeline, version: str) -> None:
        self.clf = pipeline.named_steps["clf"]
        self.version = str(version)
        # Columns in the profile's class order (`class_order`), as every output shows them.
        self.classes, self._columns = class_order(pipeline)

    def classify(self, features: np.ndarray, version: str) -> tuple[np.ndarray, np.ndarray]:
        """Class names and probabilities for CSP feature vectors (n, k)."""
        if str(version) != self.version:
            raise UnknownVersionError(str(version), self.version)
        # The engine hands finite features only; skipping sklearn's finiteness scan halves the
        # per-call overhead that dominates small batches.
        with sklearn.config_context(assume_finite=True):
            proba = self.clf.predict_proba(features)[:, self._columns]
        return self.classes[np.argmax(proba, axis=1)], proba
