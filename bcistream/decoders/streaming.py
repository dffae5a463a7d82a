"""The streaming twin of a fitted pipeline: state per stream, advance, window features, decision.

Every decoder streams the same way, so the engine holds no decoder-specific code:

1. ``project``: raw chunks (G, C, n) -> the signals to filter (G, n_signals, n). A linear spatial
   step commutes with the causal filter (``W (h * x) = h * (W x)``), so CSP decoders filter only
   their k projections; Riemannian decoders filter the C channels (identity).
2. ``advance``: filter the signals with the pipeline's own ``sos`` (carried state
   (n_signals, n_state) per stream) and extend the running sums of the per-sample moments:
   squares of the projections (CSP), or channels and their outer products (covariances).
3. ``features``: the mean moments of a window (difference of two running sums / window) -> the
   pipeline's features (log power; shrunk covariance -> tangent space).
4. ``predict_proba``: the final estimator evaluated with numpy from its fitted parameters.

Nothing is copied by hand: filters, CSP filters, means, references and classifier parameters are
read from the fitted pipeline. `compile_streaming` recognises the pipeline by its step types.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from sklearn.pipeline import Pipeline

from bcistream.data.profiles import Profile
from bcistream.decoders.blockfilter import FilterBankBlocks
from bcistream.decoders.final import FinalStep, softmax
from bcistream.pipeline.fitting import class_order

__all__ = ["CSPStreaming", "CovStreaming", "StreamingDecoder"]


@functools.lru_cache(maxsize=512)
def _lower_ones(n: int) -> np.ndarray:
    return np.tril(np.ones((n, n)))


def running_sums(mom: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Cumulative sums along time of moments (G, n, m), continuing from ``base`` (G, m)."""
    n = mom.shape[1]
    if n <= 64:
        # One product with a triangular matrix: faster than cumsum over short rows.
        Q = np.matmul(_lower_ones(n), mom)
    else:
        Q = np.cumsum(mom, axis=1)
    Q += base[:, None, :]
    return Q


class StreamingDecoder:
    """Base of the streaming twins; see the module docstring.

    Attributes
    ----------
    name : str
        Decoder name (registry key).
    profile : Profile
    n_channels : int
    n_signals : int
        Signals filtered per stream.
    n_state : int
        Filter state per signal.
    n_moments : int
        Running-sum entries per sample.
    n_features : int
    classes : ndarray
        Class names in the profile's order (`bcistream.pipeline.class_order`), the column order
        of `predict_proba` (the final step itself keeps the estimator's sorted order).
    final : FinalStep
    """

    name = "?"

    def __init__(self, pipeline: Pipeline, profile: Profile, bank: FilterBankBlocks,
                 final: FinalStep, n_moments: int, n_features: int) -> None:
        self.pipeline = pipeline
        self.profile = profile
        self.window = profile.window_samples
        self.n_channels = profile.n_channels
        self.bank = bank
        self.n_signals = bank.n_signals
        self.n_state = bank.n_state
        self.n_moments = int(n_moments)
        self.n_features = int(n_features)
        self.final = final
        names, columns = class_order(pipeline)
        self.classes = names
        # Identity when the estimator's order already is the profile's: skip the copy then.
        self._columns = None if np.array_equal(columns, np.arange(len(columns))) else columns

    # -- the seam the engine uses ------------------------------------------------------------
    def state_shape(self) -> tuple[tuple[int, int], int]:
        """Per stream: filter state shape (n_signals, n_state) and moments per sample."""
        return (self.n_signals, self.n_state), self.n_moments

    def project(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw chunks (G, C, n) -> signals (G, n_signals, n) and a finiteness flag per chunk."""
        raise NotImplementedError

    def moments(self, F: np.ndarray) -> np.ndarray:
        """Filtered signals (G, n_signals, n) -> per-sample moments (G, n, n_moments)."""
        raise NotImplementedError

    def advance(self, Z: np.ndarray, base: np.ndarray, Y: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """Filter ``Y`` (G, n_signals, n) from states ``Z`` and extend the running sums.

        Parameters
        ----------
        Z : ndarray, shape (G, n_signals, n_state)
        base : ndarray, shape (G, n_moments)
            Running sums before the chunk (zero after a reset).
        Y : ndarray, shape (G, n_signals, n)

        Returns
        -------
        Zf : ndarray, shape (G, n_signals, n_state)
        Q : ndarray, shape (G, n, n_moments)
            Running sums after each sample.
        """
        F, Zf = self.bank.apply(Y, Z)
        return Zf, running_sums(self.moments(F), base)

    def features(self, M: np.ndarray) -> np.ndarray:
        """Mean moments over windows (D, n_moments) -> features (D, n_features)."""
        raise NotImplementedError

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities (D, n_classes), columns in `classes` order, from features (numpy,
        from the fitted parameters)."""
        proba = self.final.predict_proba(features)
        return proba if self._columns is None else proba[:, self._columns]

    def classify(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class names (argmax) and probabilities."""
        proba = self.predict_proba(features)
        return self.classes[np.argmax(proba, axis=1)], proba

    # -- the offline reference ---------------------------------------------------------------
    def offline_features(self, X: np.ndarray) -> np.ndarray:
        """The fitted pipeline's features of filtered windows (D, n_filter_outputs, window)."""
        raise NotImplementedError

    def offline_proba(self, X: np.ndarray) -> np.ndarray:
        """The fitted pipeline's own ``predict_proba`` on filtered windows (sklearn, reference),
        columns in `classes` order."""
        proba = self.pipeline[1:].predict_proba(X)
        return proba if self._columns is None else proba[:, self._columns]

    def describe(self) -> dict[str, object]:
        """Name, feature count and final-step form, for logs and ``/model``."""
        return {"decoder": self.name, "n_features": self.n_features,
                "classes": [str(c) for c in self.classes], "numpy_final": self.final.native}


class CSPStreaming(StreamingDecoder):
    """CSP log-power decoders (csp-svm, csp-lda, fbcsp): projection first, running sums of squares.

    Parameters
    ----------
    spatial : ndarray, shape (n_signals, n_channels)
        The CSP filters, band after band for a filter bank.
    bank : FilterBankBlocks
        ``per_band`` = CSP components per band.
    log : ndarray of bool, shape (n_bands,)
    mean, std : ndarray, shape (n_signals,)
        Standardisation of non-log bands (``CSP.mean_`` / ``std_``; unused where log).
    select : ndarray of bool, shape (n_signals,) or None
        Features kept by a selection step.
    """

    def __init__(self, pipeline: Pipeline, profile: Profile, name: str, spatial: np.ndarray,
                 bank: FilterBankBlocks, log: np.ndarray, mean: np.ndarray, std: np.ndarray,
                 final: FinalStep, select: np.ndarray | None = None,
                 offline: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        n_feat = int(select.sum()) if select is not None else spatial.shape[0]
        super().__init__(pipeline, profile, bank, final, spatial.shape[0], n_feat)
        self.name = name
        self.spatial = np.ascontiguousarray(spatial, dtype=np.float64)
        self.log_mask = np.repeat(np.asarray(log, dtype=bool), bank.per_band)
        self.all_log = bool(self.log_mask.all())
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        self.select = None if select is None or select.all() else np.flatnonzero(select)
        self._offline = offline

    @property
    def filters(self) -> np.ndarray:
        """The spatial (CSP) filters, shape (n_signals, n_channels)."""
        return self.spatial

    def project(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", over="ignore"):
            Y = np.matmul(self.spatial, X)
            # NaN/Inf propagate through the projection: one reduction checks all channels.
            ok = np.isfinite(Y.sum(axis=(1, 2)))
        return Y, ok

    def moments(self, F: np.ndarray) -> np.ndarray:
        return (F * F).transpose(0, 2, 1)

    def features(self, M: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.all_log:
                out = np.log(M)
            else:
                out = np.where(self.log_mask, np.log(np.where(self.log_mask, M, 1.0)),
                               (M - self.mean) / self.std)
        return out if self.select is None else out[:, self.select]

    def offline_features(self, X: np.ndarray) -> np.ndarray:
        assert self._offline is not None
        return self._offline(X)


def _upper_index(C: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(C)


class CovStreaming(StreamingDecoder):
    """Covariance decoders (ts-lr, ts-svm, mdm): running sums of channels and their outer products.

    Moments per sample: ``x`` (C), ``x_i x_j`` for ``i <= j`` (C(C+1)/2) and, for Ledoit-Wolf,
    ``|x|^2 x`` (C) and ``|x|^4`` (1), enough to reproduce the centred sample covariance and the
    OAS / Ledoit-Wolf shrinkage of any window exactly.

    Parameters
    ----------
    estimator : str
        pyriemann covariance estimator: ``scm``, ``cov``, ``oas`` or ``lwf``.
    reference : ndarray, shape (C, C) or None
        Tangent-space reference (``TangentSpace.reference_``); None for MDM.
    means : ndarray, shape (n_classes, C, C) or None
        MDM class means (``MDM.covmeans_``).
    """

    ESTIMATORS = ("scm", "cov", "oas", "lwf")

    def __init__(self, pipeline: Pipeline, profile: Profile, name: str, bank: FilterBankBlocks,
                 estimator: str, final_est: object, reference: np.ndarray | None,
                 means: np.ndarray | None) -> None:
        from bcistream.decoders.final import compile_final

        C = profile.n_channels
        self.C = C
        self.iu = _upper_index(C)
        self.P = len(self.iu[0])
        self.estimator = estimator
        n_mom = C + self.P + (C + 1 if estimator == "lwf" else 0)
        coeffs = np.where(self.iu[0] == self.iu[1], 1.0, np.sqrt(2.0))
        self.coeffs = coeffs
        if reference is not None:
            self.ref_isqrt = _powm(reference, -0.5)
            final = compile_final(final_est)
        else:
            assert means is not None
            self.means_isqrt = np.stack([_powm(m, -0.5) for m in means])
            final = compile_final(final_est, native=self._mdm_proba,
                                  features_to_input=self.unpack)
        super().__init__(pipeline, profile, bank, final, n_mom, self.P)
        self.name = name
        self.tangent = reference is not None

    def project(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", over="ignore"):
            ok = np.isfinite(X.sum(axis=(1, 2)))
        return np.asarray(X, dtype=np.float64), ok

    def moments(self, F: np.ndarray) -> np.ndarray:
        # Time-major from the start: the products land in place, contiguous for the running sums.
        G, C, n = F.shape
        P = self.P
        out = np.empty((G, n, self.n_moments))
        Ft = out[:, :, :C]
        Ft[...] = F.transpose(0, 2, 1)
        i, j = self.iu
        np.multiply(Ft[:, :, i], Ft[:, :, j], out=out[:, :, C:C + P])
        if self.estimator == "lwf":
            r2 = np.einsum("gtc,gtc->gt", Ft, Ft)[:, :, None]
            np.multiply(r2, Ft, out=out[:, :, C + P:C + P + C])
            out[:, :, -1:] = r2 * r2
        return out

    def unpack(self, V: np.ndarray) -> np.ndarray:
        """Upper triangles (D, P) -> symmetric matrices (D, C, C)."""
        i, j = self.iu
        S = np.empty((V.shape[0], self.C, self.C))
        S[:, i, j] = V
        S[:, j, i] = V
        return S

    def covariances(self, M: np.ndarray) -> np.ndarray:
        """Mean moments (D, n_moments) -> the pipeline's covariance estimates (D, C, C)."""
        C, P, n = self.C, self.P, self.window
        mu = M[:, :C]
        S = self.unpack(M[:, C:C + P]) - mu[:, :, None] * mu[:, None, :]
        est = self.estimator
        if est == "scm":
            return S
        if est == "cov":
            return S * (n / (n - 1.0))
        tr = np.trace(S, axis1=1, axis2=2)
        m = tr / C
        if est == "oas":
            alpha = (S * S).mean(axis=(1, 2))
            num = alpha + m * m
            den = (n + 1.0) * (alpha - m * m / C)
            with np.errstate(divide="ignore", invalid="ignore"):
                shrink = np.where(den == 0, 1.0, np.minimum(num / den, 1.0))
        else:  # lwf, as sklearn.covariance.ledoit_wolf_shrinkage on the centred window
            m3 = M[:, C + P:C + P + C]
            m4 = M[:, -1]
            c = (mu * mu).sum(axis=1)
            M2 = S + mu[:, :, None] * mu[:, None, :]
            quad = np.einsum("di,dij,dj->d", mu, M2, mu)
            beta_n = (m4 - 4.0 * (mu * m3).sum(axis=1) + 4.0 * quad
                      + 2.0 * c * np.trace(M2, axis1=1, axis2=2) - 3.0 * c * c)
            delta_ = (S * S).sum(axis=(1, 2))
            beta = (beta_n - delta_) / (C * n)
            delta = (delta_ - 2.0 * m * tr + C * m * m) / C
            beta = np.minimum(beta, delta)
            with np.errstate(divide="ignore", invalid="ignore"):
                shrink = np.where(beta == 0, 0.0, beta / delta)
        out = (1.0 - shrink)[:, None, None] * S
        out[:, np.arange(C), np.arange(C)] += (shrink * m)[:, None]
        return out

    def features(self, M: np.ndarray) -> np.ndarray:
        S = self.covariances(M)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.tangent:
                W = self.ref_isqrt
                L = _logm(W @ S @ W)
                return self.coeffs * L[:, self.iu[0], self.iu[1]]
            ok = np.linalg.eigvalsh(S)[:, 0] > 0
            V = S[:, self.iu[0], self.iu[1]].copy()
            V[~ok] = np.nan  # not positive definite (e.g. a flat window): no features
            return V

    def _mdm_proba(self, F: np.ndarray) -> np.ndarray:
        S = self.unpack(F)
        W = self.means_isqrt  # (K, C, C)
        ev = np.linalg.eigvalsh(W[None] @ S[:, None] @ W[None])  # (D, K, C)
        d2 = (np.log(ev) ** 2).sum(axis=2)
        return softmax(-d2)

    def offline_features(self, X: np.ndarray) -> np.ndarray:
        out = self.pipeline[1:-1].transform(X)
        if not self.tangent:
            out = out[:, self.iu[0], self.iu[1]]
        return out


def _powm(A: np.ndarray, p: float) -> np.ndarray:
    w, V = np.linalg.eigh(A)
    return (V * w ** p) @ V.T


def _logm(A: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh(A)
    return (V * np.log(w)[..., None, :]) @ np.swapaxes(V, -1, -2)
