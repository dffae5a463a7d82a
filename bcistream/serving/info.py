"""The answers of ``GET /model`` and ``GET /readyz``: what the model holder serves, and how it is.

Plain functions of the holder (``holder -> (status, payload)``) so the answers are tested without
a server; `bcistream.serving.guard.Guard` sends them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["model_info", "readiness"]

Answer = tuple[int, dict[str, Any]]


def _decoder_fields(pipe: Any) -> dict[str, Any]:
    """What the engine and clients need of the held model's decoder: name, n_features, classes
    (profile order)."""
    from bcistream.serving.compute import decoder_of

    dec = decoder_of(pipe)
    return {"decoder": dec.name, "n_features": int(dec.n_features),
            "classes": [str(c) for c in dec.classes]}


def model_info(holder: Any) -> Answer:
    """``GET /model``: the served version, the alias followed and every alias of the version.

    Parameters
    ----------
    holder : ModelHolder or None
        The service's holder (``None`` while the service starts).

    Returns
    -------
    tuple
        ``(200, info)``, or ``(503, {"error": ...})`` before the first model is loaded.
    """
    model = None if holder is None else holder.current
    if model is None:
        return 503, {"error": "no model loaded yet"}
    from bcistream.pipeline import pipeline_profile

    return 200, {
        "name": getattr(model, "name", None),
        "version": str(model.version),
        "alias": holder.uri.alias,  # the alias this service follows (None: a fixed version)
        # Every alias of the served version, from the registry at the last check: the model's
        # own ``alias`` is only the one it was loaded through (or the first of several).
        "version_aliases": holder.aliases_of(model.version),
        "run_id": getattr(model, "run_id", None),
        "model_uri": holder.model_uri,
        "held_versions": holder.versions,
        "profile": pipeline_profile(model.pipeline).to_dict(),
        "metrics": dict(getattr(model, "metrics", None) or {}),
        **_decoder_fields(model.pipeline),
    }


def readiness(holder: Any) -> Answer:
    """``GET /readyz``: 200 with the holder's status once a model is loaded, else 503 with why."""
    if holder is None:
        return 503, {"ready": False, "detail": "service is starting"}
    status = holder.status()
    if status["ready"]:
        status["detail"] = ("serving the last good model: the registry is unreachable"
                            if status["serving_last_good_model"] else "serving")
    else:
        why = f" ({status['last_error']})" if status["last_error"] else ""
        status["detail"] = "no model loaded yet" + why
    return (200 if status["ready"] else 503), status
