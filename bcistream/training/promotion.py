"""The promotion gate: a challenger becomes ``champion`` only when it is better on the same held-out data.

Stored metrics are never trusted: champion and challenger are loaded from the registry and both
re-scored on the held-out trials given to `promote` (the evaluation sessions, or trials recorded
in closed loop). The challenger must also pass sanity checks: it loads, its profile decodes the
same streams as the held-out data and the champion, and it answers sensibly on probe windows.
Every decision and its reasons are written as tags of the challenger version. Any error means
no promotion.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score
from sklearn.pipeline import Pipeline

from bcistream.data.profiles import Profile
from bcistream.data.recording import Recording
from bcistream.errors import BcistreamError, ProfileError
from bcistream.pipeline import Epochs, decode_filtered, epochs_from_recording, pipeline_profile
from bcistream.training.registry import LoadedModel, alias_version, client, load_model, set_alias

__all__ = ["CheckFailed", "LabelledTrials", "PromotionDecision", "PromotionPolicy", "probe_check", "promote",
           "score_heldout"]

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"


class CheckFailed(BcistreamError):
    """A sanity check of the challenger failed (a refusal, not an error)."""


def _check_compatible(reference: Profile, candidate: Profile, what: str) -> None:
    try:
        reference.check_compatible(candidate)
    except ProfileError:
        parts = []
        missing = [c for c in reference.channels if c not in candidate.channels]
        extra = [c for c in candidate.channels if c not in reference.channels]
        if missing or extra:
            parts.append(f"{candidate.n_channels} channels vs {reference.n_channels}"
                         + (f", lacks {missing[:4]}" if missing else "")
                         + (f", extra {extra[:4]}" if extra else ""))
        elif reference.channels != candidate.channels:
            parts.append("channel order differs")
        if reference.sfreq != candidate.sfreq:
            parts.append(f"{candidate.sfreq:g} Hz vs {reference.sfreq:g} Hz")
        if reference.window_samples != candidate.window_samples:
            parts.append(f"window {candidate.window_samples} vs {reference.window_samples} samples")
        raise CheckFailed(f"profile '{candidate.name}' does not fit {what} '{reference.name}': "
                          + "; ".join(parts)) from None


@dataclass(frozen=True)
class LabelledTrials:
    """Raw labelled trials, e.g. recorded in closed loop.

    Parameters
    ----------
    X : ndarray, shape (n_trials, n_channels, n_times)
        Raw samples in profile channel order, ``n_times >= window``; leading extra samples are
        pre-roll for the zero-state filter (as for ``Pipeline.predict``).
    y : ndarray of str
        Class names.
    profile : Profile
        The profile the trials were recorded with.
    """

    X: np.ndarray
    y: np.ndarray
    profile: Profile


#: Held-out data: recordings (each model filters the continuous signal itself), or raw trials
#: (`LabelledTrials`, or any object with ``X``, ``y`` and ``profile`` such as ``RecordedTrials``).
HeldOut = Recording | Sequence[Recording] | LabelledTrials


@dataclass(frozen=True)
class PromotionPolicy:
    """When a challenger wins.

    Attributes
    ----------
    margin : float
        The challenger's score must exceed the champion's by at least this much (and be higher).
    min_trials : int
        Fewest labelled held-out trials a comparison is made on.
    metric : {"accuracy", "kappa"}
    n_probe : int
        Probe windows of the sanity check.
    """

    margin: float = 0.02
    min_trials: int = 20
    metric: str = "accuracy"
    n_probe: int = 4

    def __post_init__(self) -> None:
        if self.metric not in ("accuracy", "kappa"):
            raise BcistreamError(f"promotion metric must be 'accuracy' or 'kappa', got '{self.metric}'")
        if self.margin < 0 or self.min_trials < 1:
            raise BcistreamError("promotion margin must be >= 0 and min_trials >= 1")


@dataclass(frozen=True)
class PromotionDecision:
    """The outcome of one gate pass (also written as ``promotion.*`` version tags)."""

    name: str
    challenger: str | None
    champion_before: str | None
    promoted: bool
    reasons: tuple[str, ...]
    metric: str
    challenger_score: float | None = None
    champion_score: float | None = None
    n_trials: int = 0
    decided_at: float = field(default_factory=time.time)

    @property
    def champion_after(self) -> str | None:
        """The champion once the decision is applied."""
        return self.challenger if self.promoted else self.champion_before

    def summary(self) -> str:
        """One line for people."""
        verdict = "promoted to champion" if self.promoted else "refused"
        return f"{self.name} v{self.challenger}: {verdict} — " + "; ".join(self.reasons)

    def tags(self) -> dict[str, str]:
        """Version tags recording the decision."""
        out = {
            "promotion.decision": "promoted" if self.promoted else "refused",
            "promotion.reasons": "; ".join(self.reasons)[:4900],
            "promotion.verdict": (self.reasons[-1] if self.reasons else "")[:4900],
            "promotion.metric": self.metric,
            "promotion.n_trials": str(self.n_trials),
            "promotion.champion_before": self.champion_before or "none",
            "promotion.time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.decided_at)),
        }
        if self.challenger_score is not None:
            out["promotion.challenger_score"] = f"{self.challenger_score:.4f}"
        if self.champion_score is not None:
            out["promotion.champion_score"] = f"{self.champion_score:.4f}"
        return out


def _is_trials(heldout) -> bool:
    # Raw labelled trials of any type with X, y and profile (LabelledTrials, or the recorded trials
    # of `bcistream.training.recorded.RecordedTrials`).
    return all(hasattr(heldout, attr) for attr in ("X", "y", "profile")) and not isinstance(heldout, Epochs)


def _recordings(heldout: HeldOut) -> list[Recording] | None:
    if isinstance(heldout, Recording):
        return [heldout]
    if _is_trials(heldout):
        if heldout.profile is None:
            raise BcistreamError("held-out trials carry no profile")
        return None
    if isinstance(heldout, Epochs):
        raise BcistreamError(
            "held-out data must be recordings or raw LabelledTrials, not filtered Epochs: each model "
            "filters with its own band, so filtered windows would favour one of them"
        )
    recs = list(heldout)
    if not recs or not all(isinstance(r, Recording) for r in recs):
        raise BcistreamError("held-out data must be a Recording, a list of Recordings or LabelledTrials")
    return recs


def heldout_profile(heldout: HeldOut) -> Profile:
    """The profile of the held-out data (the streams the models must decode)."""
    recs = _recordings(heldout)
    return heldout.profile if recs is None else recs[0].profile


def score_heldout(pipe: Pipeline, heldout: HeldOut) -> tuple[dict[str, float], int]:
    """Accuracy and kappa of a fitted pipeline on labelled held-out data, and the trial count.

    Recordings are filtered continuously by the model's own filter and cut into its windows
    (exactly as in training and live decoding); raw trials go through ``pipe.predict``.
    """
    classes = list(pipeline_profile(pipe).class_names)
    recs = _recordings(heldout)
    if recs is None:
        y = np.asarray(heldout.y, dtype=str)
        pred = np.asarray(pipe.predict(np.asarray(heldout.X, dtype=np.float64)), dtype=str)
    else:
        ys, preds = [], []
        for rec in recs:
            epochs = epochs_from_recording(pipe, rec)
            if len(epochs.y):
                ys.append(np.asarray(epochs.y, dtype=str))
                preds.append(np.asarray(decode_filtered(pipe, epochs.X)[0], dtype=str))
        y = np.concatenate(ys) if ys else np.array([], dtype=str)
        pred = np.concatenate(preds) if preds else np.array([], dtype=str)
    if len(y) == 0:
        return {"accuracy": float("nan"), "kappa": float("nan")}, 0
    return {"accuracy": float(accuracy_score(y, pred)),
            "kappa": float(cohen_kappa_score(y, pred, labels=classes))}, int(len(y))


def _probe_windows(heldout: HeldOut, profile: Profile, n: int) -> np.ndarray:
    """Raw windows with one second of pre-roll from the held-out data (noise if none fit)."""
    length = profile.window_samples + int(profile.sfreq)
    recs = _recordings(heldout)
    if recs is None:
        return np.asarray(heldout.X[:n], dtype=np.float64)
    out = []
    for rec in recs:
        for cue in rec.cues:
            end = cue.sample + profile.offset_samples + profile.window_samples
            if end - length >= 0 and end <= rec.n_samples:
                win = rec.data[:, end - length:end]
                if np.isfinite(win).all():
                    out.append(win)
            if len(out) >= n:
                return np.stack(out)
    if out:
        return np.stack(out)
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, profile.n_channels, length)) * 1e-5


def probe_check(pipe: Pipeline, windows: np.ndarray) -> None:
    """Raise `BcistreamError` unless the model answers probe windows with valid labels and probabilities."""
    prof = pipeline_profile(pipe)
    proba = np.asarray(pipe.predict_proba(windows))
    labels = np.asarray(pipe.predict(windows), dtype=str)
    n = len(windows)
    if proba.shape[0] != n or labels.shape != (n,):
        raise CheckFailed(
            f"probe: {n} windows gave {proba.shape[0]} probability rows and {labels.shape} labels")
    if not np.isfinite(proba).all() or not np.allclose(proba.sum(axis=1), 1.0, atol=1e-6):
        raise CheckFailed("probe: probabilities are not finite or do not sum to 1")
    unknown = sorted(set(labels) - set(prof.class_names))
    if unknown:
        raise CheckFailed(f"probe: labels {unknown} are not classes of profile '{prof.name}'")


def _write_tags(tracking_uri: str, name: str, version: str, tags: dict[str, str]) -> None:
    c = client(tracking_uri)
    for key, value in tags.items():
        c.set_model_version_tag(name, version, key, value)


def promote(
    heldout: HeldOut,
    *,
    tracking_uri: str,
    name: str,
    challenger: str | None = None,
    policy: PromotionPolicy | None = None,
    on_promote: Callable[[PromotionDecision], None] | None = None,
    loader: Callable[[str, str], LoadedModel] = load_model,
) -> PromotionDecision:
    """Compare challenger and champion on ``heldout`` and move the ``champion`` alias if the challenger wins.

    Parameters
    ----------
    heldout : Recording, list of Recording, or LabelledTrials
        Labelled data neither model was trained on.
    tracking_uri, name : str
        Registry and registered model name.
    challenger : str, optional
        Version to judge (default: the version under alias ``challenger``).
    policy : PromotionPolicy, optional
    on_promote : callable, optional
        Called with the decision after the alias moved (e.g. to publish on Kafka); its errors are
        logged and do not undo the promotion.
    loader : callable
        ``loader(model_uri, tracking_uri) -> LoadedModel`` (default `load_model`).

    Returns
    -------
    PromotionDecision
        ``promoted`` is False on any error; the reasons say why.
    """
    policy = policy or PromotionPolicy()
    champion_before: str | None = None
    reasons: list[str] = []
    scores: dict[str, float] = {}
    n_trials = 0
    promoted = False
    try:
        champion_before = alias_version(tracking_uri, name, CHAMPION)
        if challenger is None:
            challenger = alias_version(tracking_uri, name, CHALLENGER)
            if challenger is None:
                raise BcistreamError(f"model '{name}' has no '{CHALLENGER}' alias: nothing to judge")
        challenger = str(challenger)
        promoted, reasons, scores, n_trials = _judge(heldout, tracking_uri, name, challenger,
                                                    champion_before, policy, loader)
    except CheckFailed as exc:
        promoted = False
        reasons.append(f"sanity check failed: {exc}")
    except Exception as exc:  # noqa: BLE001  (any error means: no promotion)
        promoted = False
        reasons.append(f"error, not promoted: {type(exc).__name__}: {exc}")
        log.warning("promotion of %s v%s failed: %s", name, challenger, exc)
    decision = PromotionDecision(
        name=name, challenger=challenger, champion_before=champion_before, promoted=promoted,
        reasons=tuple(reasons), metric=policy.metric, challenger_score=scores.get("challenger"),
        champion_score=scores.get("champion"), n_trials=n_trials,
    )
    decision = _apply(decision, tracking_uri)
    if decision.promoted and on_promote is not None:
        try:
            on_promote(decision)
        except Exception as exc:  # noqa: BLE001  (a notifier must not undo a promotion)
            log.warning("on_promote hook failed: %s: %s", type(exc).__name__, exc)
    return decision


def _judge(heldout: HeldOut, tracking_uri: str, name: str, challenger: str, champion: str | None,
           policy: PromotionPolicy, loader) -> tuple[bool, list[str], dict[str, float], int]:
    reasons: list[str] = []
    if champion == challenger:
        return False, [f"v{challenger} is already the champion"], {}, 0
    try:
        cand = loader(f"models:/{name}/{challenger}", tracking_uri)
    except BcistreamError as exc:
        raise CheckFailed(f"v{challenger} does not load from the registry: {exc}") from None
    reasons.append(f"v{challenger} loads from the registry")
    _check_compatible(heldout_profile(heldout), cand.profile, "the held-out streams")
    champ = None
    if champion is not None:
        champ = loader(f"models:/{name}/{champion}", tracking_uri)
        _check_compatible(champ.profile, cand.profile, f"champion v{champion}")
    reasons.append("profile compatible with the held-out streams" + (" and the champion" if champ else ""))
    try:
        probe_check(cand.pipeline, _probe_windows(heldout, cand.profile, policy.n_probe))
    except CheckFailed:
        raise
    except Exception as exc:  # noqa: BLE001  (a model that throws on probes fails the check)
        raise CheckFailed(f"probe windows: {type(exc).__name__}: {exc}") from None
    reasons.append(f"answers {policy.n_probe} probe windows")
    cand_scores, n = score_heldout(cand.pipeline, heldout)
    if n < policy.min_trials:
        return False, [*reasons, f"only {n} labelled held-out trials (< {policy.min_trials})"], {}, n
    scores = {"challenger": cand_scores[policy.metric]}
    if champ is None:
        reasons.append(f"no champion yet: first model that passes the checks "
                       f"({policy.metric} {scores['challenger']:.3f} on {n} trials)")
        return True, reasons, scores, n
    champ_scores, n_champ = score_heldout(champ.pipeline, heldout)
    if n_champ != n:
        raise BcistreamError(f"champion scored on {n_champ} trials, challenger on {n}: not the same data")
    scores["champion"] = champ_scores[policy.metric]
    delta = scores["challenger"] - scores["champion"]
    verdict = (f"{policy.metric} {scores['challenger']:.3f} vs champion v{champion} {scores['champion']:.3f} "
               f"on the same {n} trials (delta {delta:+.3f}, margin {policy.margin:.3f})")
    better = delta > 0 and delta >= policy.margin - 1e-12
    reasons.append(("better: " if better else "not better by the margin: ") + verdict)
    return better, reasons, scores, n


def _apply(decision: PromotionDecision, tracking_uri: str) -> PromotionDecision:
    """Write the decision tags, then move the alias; a failure here also means no promotion."""
    if decision.challenger is None:
        return decision
    try:
        _write_tags(tracking_uri, decision.name, decision.challenger, decision.tags())
        if decision.promoted:
            set_alias(tracking_uri, decision.name, CHAMPION, decision.challenger)
            if decision.champion_before:
                _write_tags(tracking_uri, decision.name, decision.champion_before,
                            {"promotion.replaced_by": decision.challenger})
    except Exception as exc:  # noqa: BLE001
        log.warning("could not record promotion of %s v%s: %s", decision.name, decision.challenger, exc)
        if decision.promoted:
            # If the alias did move despite the error, the registry is the truth: report that.
            moved = alias_version(tracking_uri, decision.name, CHAMPION) == decision.challenger
            if not moved:
                return PromotionDecision(
                    name=decision.name, challenger=decision.challenger,
                    champion_before=decision.champion_before, promoted=False,
                    reasons=(*decision.reasons, f"error, not promoted: {type(exc).__name__}: {exc}"),
                    metric=decision.metric, challenger_score=decision.challenger_score,
                    champion_score=decision.champion_score, n_trials=decision.n_trials,
                )
    return decision
