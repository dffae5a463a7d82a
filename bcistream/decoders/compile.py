"""`compile_streaming`: recognise a fitted pipeline by its step types and build its streaming twin."""

from __future__ import annotations

import numpy as np
from mne.decoding import CSP
from sklearn.calibration import CalibratedClassifierCV
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC

from bcistream.decoders.blockfilter import FilterBankBlocks
from bcistream.decoders.final import compile_final
from bcistream.decoders.steps import BandCSP, MutualInfoSelect
from bcistream.decoders.streaming import CovStreaming, CSPStreaming, StreamingDecoder
from bcistream.errors import ProfileError
from bcistream.pipeline.filter import CausalBandpass
from bcistream.pipeline.filterbank import CausalFilterBank

__all__ = ["compile_streaming", "decoder_name", "spatial_patterns"]


def _clf_kind(clf: object) -> str:
    inner = clf.estimator if isinstance(clf, CalibratedClassifierCV) else clf
    if isinstance(inner, SVC):
        return "svm"
    if isinstance(inner, LinearDiscriminantAnalysis):
        return "lda"
    return "lr" if type(inner).__name__ == "LogisticRegression" else type(inner).__name__.lower()


def decoder_name(pipeline: Pipeline) -> str:
    """The registry name of a pipeline's decoder, read from its step types (e.g. ``csp-svm``).

    Raises
    ------
    ProfileError
        Not a pipeline of a known decoder.
    """
    steps = [s for _, s in pipeline.steps] if isinstance(pipeline, Pipeline) else []
    kinds = [type(s).__name__ for s in steps]
    if len(steps) == 3 and isinstance(steps[0], CausalBandpass) and isinstance(steps[1], CSP):
        return f"csp-{_clf_kind(steps[2])}"
    if len(steps) == 4 and isinstance(steps[0], CausalFilterBank) and isinstance(steps[1], BandCSP):
        return f"fbcsp-{_clf_kind(steps[3])}" if _clf_kind(steps[3]) != "svm" else "fbcsp"
    if len(steps) >= 3 and isinstance(steps[0], CausalBandpass) and kinds[1] == "Covariances":
        if len(steps) == 3 and kinds[2] == "MDM":
            return "mdm"
        if len(steps) == 4 and kinds[2] == "TangentSpace":
            return f"ts-{_clf_kind(steps[3])}"
    shown = " -> ".join(kinds) or type(pipeline).__name__
    raise ProfileError(f"not a pipeline of a known decoder (steps: {shown})")


def _fitted_filter(step: CausalBandpass | CausalFilterBank) -> CausalBandpass | CausalFilterBank:
    if not hasattr(step, "sos_"):
        step.fit()
    return step


def compile_streaming(pipeline: Pipeline) -> StreamingDecoder:
    """The streaming twin of a fitted decoding pipeline.

    Parameters
    ----------
    pipeline : Pipeline
        Fitted, built by a registered decoder (`bcistream.decoders.make_decoder`) or an older
        ``filter -> csp -> clf`` model.

    Returns
    -------
    StreamingDecoder

    Raises
    ------
    ProfileError
        Unknown structure, an unfitted step, or a covariance estimator that cannot stream.
    """
    name = decoder_name(pipeline)
    try:
        return _compile(pipeline, name)
    except (AttributeError, KeyError, TypeError, IndexError) as exc:
        raise ProfileError(f"not a fitted {name} pipeline ({type(exc).__name__}: {exc})") from exc


def _compile(pipeline: Pipeline, name: str) -> StreamingDecoder:
    steps = [s for _, s in pipeline.steps]
    filt = _fitted_filter(steps[0])
    profile = filt.get_profile()
    C = profile.n_channels
    if isinstance(steps[1], CSP):
        csp = steps[1]
        k = int(csp.n_components)
        W = np.asarray(csp.filters_[:k], dtype=np.float64)
        if W.shape[1] != C:
            raise ProfileError(f"CSP filters have {W.shape[1]} channels, profile has {C}")
        log = csp.log is None or bool(csp.log)
        mean = np.zeros(k) if log else np.asarray(csp.mean_)
        std = np.ones(k) if log else np.asarray(csp.std_)
        return CSPStreaming(pipeline, profile, name, W, FilterBankBlocks([filt.sos_], k),
                            np.array([log]), mean, std, compile_final(steps[2]),
                            offline=steps[1].transform)
    if isinstance(steps[1], BandCSP):
        bcsp, sel = steps[1], steps[2]
        k = int(bcsp.n_components)
        W = np.concatenate([np.asarray(c.filters_[:k]) for c in bcsp.csps_])
        logs = np.array([c.log is None or bool(c.log) for c in bcsp.csps_])
        mean = np.concatenate([np.zeros(k) if lg else np.asarray(c.mean_)
                               for c, lg in zip(bcsp.csps_, logs, strict=True)])
        std = np.concatenate([np.ones(k) if lg else np.asarray(c.std_)
                              for c, lg in zip(bcsp.csps_, logs, strict=True)])
        support = np.asarray(sel.support_) if isinstance(sel, MutualInfoSelect) else None
        return CSPStreaming(pipeline, profile, name, W, FilterBankBlocks(list(filt.sos_), k),
                            logs, mean, std, compile_final(steps[3]), select=support,
                            offline=pipeline[1:-1].transform)
    cov = steps[1]
    est = str(cov.estimator)
    if est not in CovStreaming.ESTIMATORS:
        raise ProfileError(f"covariance estimator {est!r} cannot stream exactly "
                           f"(streamable: {', '.join(CovStreaming.ESTIMATORS)})")
    if name == "mdm":
        mdm = steps[2]
        if getattr(mdm, "metric", "riemann") not in ("riemann", {"mean": "riemann", "distance": "riemann"}):
            raise ProfileError(f"MDM metric {mdm.metric!r} is not supported (riemann only)")
        return CovStreaming(pipeline, profile, name, FilterBankBlocks([filt.sos_], C), est, mdm,
                            None, np.asarray(mdm.covmeans_))
    ts = steps[2]
    if ts.metric != "riemann" or ts.tsupdate:
        raise ProfileError("tangent space must use metric='riemann' and tsupdate=False to stream")
    return CovStreaming(pipeline, profile, name, FilterBankBlocks([filt.sos_], C), est, steps[3],
                        np.asarray(ts.reference_), None)


def spatial_patterns(pipeline: Pipeline) -> np.ndarray | None:
    """CSP patterns (n_components, n_channels) of a single-band CSP decoder, else ``None``.

    For plots: the scalp maps of what the spatial filters pick up. Riemannian and filter-bank
    decoders have no single set of patterns.
    """
    step = pipeline[1] if isinstance(pipeline, Pipeline) and len(pipeline) > 1 else None
    if isinstance(step, CSP) and hasattr(step, "patterns_"):
        return np.asarray(step.patterns_)[: int(step.n_components)]
    return None
