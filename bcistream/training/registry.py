"""Registry access: log and register a fitted pipeline, load it back, read and move aliases.

This module writes: it logs a fitted pipeline in an MLflow run, registers it as a new version and
points aliases at versions. Aliases (``champion``, ``challenger``) replace MLflow's deprecated
stages. The rest of registry access lives in modules of one job each, and every name is
re-exported here so ``from bcistream.training.registry import ...`` keeps working:

- `bcistream.training.registry_errors`: `ModelError`, `RegistryBusyError` and what MLflow's
  errors mean (``is_busy_error``, ``is_not_found``, ``read_failure``);
- `bcistream.training.registry_client`: `client` (patient with a busy database),
  `set_registry_wait`, `tracking`;
- `bcistream.training.registry_lookup`: `alias_version`, `version_aliases`, `model_versions`,
  `registered_names`, `missing_model` (read-only look-ups and why a model URI finds nothing);
- `bcistream.training.model_loading`: `load_model`, `LoadedModel` and `TRUSTED_TYPES`, the
  allow-list skops loads with (models are stored in the skops format, never pickle).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.pipeline import Pipeline

from bcistream.data.profiles import Profile
from bcistream.decoders import decoder_name
from bcistream.pipeline import pipeline_profile

# Everything below is re-exported for existing callers; ``x as x`` marks a re-export of a name that
# is public but not in ``__all__`` (linters would call it unused).
from bcistream.training.model_loading import TRUSTED_TYPES, LoadedModel, load_model
from bcistream.training.registry_client import client, set_registry_wait, tracking
from bcistream.training.registry_errors import ModelError, RegistryBusyError
from bcistream.training.registry_errors import is_busy_error as is_busy_error
from bcistream.training.registry_errors import is_not_found as is_not_found
from bcistream.training.registry_errors import read_failure as read_failure
from bcistream.training.registry_lookup import (
    alias_version,
    missing_model,
    model_versions,
    registered_names,
    version_aliases,
)

if TYPE_CHECKING:
    from mlflow.models.model import ModelInfo

__all__ = [
    "TRUSTED_TYPES",
    "LoadedModel",
    "ModelError",
    "RegistryBusyError",
    "alias_version",
    "client",
    "load_model",
    "log_pipeline",
    "missing_model",
    "model_versions",
    "register_model",
    "registered_names",
    "set_alias",
    "set_registry_wait",
    "tracking",
    "version_aliases",
]

#: Artifact name of the model inside a run.
MODEL_ARTIFACT = "model"


def _requirements() -> list[str]:
    # Explicit requirements: MLflow's inference of them starts a subprocess that costs ~4 s.
    import mne
    import sklearn
    import skops

    return [f"scikit-learn=={sklearn.__version__}", f"mne=={mne.__version__}",
            f"skops=={skops.__version__}", "bcistream"]


def input_example(profile: Profile, n: int = 1) -> np.ndarray:
    """A small raw-trial example, shape (n, n_channels, window), float64 volts (what predict takes)."""
    rng = np.random.default_rng(0)
    shape = (n, profile.n_channels, profile.window_samples)
    return np.round(rng.standard_normal(shape) * 1e-5, 9)


def log_pipeline(pipe: Pipeline, *, metadata: dict[str, Any] | None = None) -> ModelInfo:
    """Log a fitted pipeline in the active MLflow run (skops format, signature, input example).

    Returns
    -------
    mlflow.models.model.ModelInfo
    """
    import mlflow.sklearn
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import Schema, TensorSpec

    prof = pipeline_profile(pipe)
    example = input_example(prof)
    inferred = infer_signature(example, pipe.predict(example))
    # Any batch size and any time length >= the window: leading samples are filter pre-roll
    # (docs/serving.md), so the signature must not pin n_times at the window length.
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float64), (-1, prof.n_channels, -1), name=None)]),
        outputs=inferred.outputs)
    meta = {"profile": prof.to_dict(), **(metadata or {})}
    return mlflow.sklearn.log_model(
        pipe,
        name=MODEL_ARTIFACT,
        signature=signature,
        input_example=example,
        serialization_format="skops",
        skops_trusted_types=list(TRUSTED_TYPES),
        pip_requirements=_requirements(),
        metadata=meta,
    )


def register_model(
    pipeline: Pipeline,
    *,
    tracking_uri: str,
    name: str,
    run_id: str,
    alias: str | None = "challenger",
    tags: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> str:
    """Log ``pipeline`` in run ``run_id``, register it as a new version of ``name``, set ``alias``.

    Parameters
    ----------
    pipeline : Pipeline
        Fitted decoding pipeline.
    tracking_uri : str
        MLflow tracking and registry URI.
    name : str
        Registered model name.
    run_id : str
        The run the model belongs to (it may be the active run).
    alias : str or None
        Alias to point at the new version (default ``challenger``).
    tags : dict, optional
        Tags of the new version (values are stringified).
    metadata : dict, optional
        Extra entries of the MLmodel ``metadata`` (e.g. metrics, for offline use of a model folder).

    Returns
    -------
    str
        The new version number.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    with tracking(tracking_uri):
        active = mlflow.active_run()
        ctx = contextlib.nullcontext() if active and active.info.run_id == run_id else (
            mlflow.start_run(run_id=run_id, nested=active is not None))
        with ctx:
            info = log_pipeline(pipeline, metadata=metadata)
        # Still inside tracking(): MLflow's sqlite registry looks the logged model up through the
        # process-wide tracking URI when it creates the version.
        c = client(tracking_uri)
        try:
            c.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise ModelError(f"{tracking_uri}: cannot create model '{name}': {exc.message}") from None
        # The decoder is read from the pipeline itself, so every path that registers records it.
        all_tags = {**{k: str(v) for k, v in (tags or {}).items()}, "run_id": run_id,
                    "decoder": decoder_name(pipeline)}
        mv = c.create_model_version(name, source=info.model_uri, run_id=run_id, tags=all_tags,
                                    model_id=info.model_id)
        if alias:
            c.set_registered_model_alias(name, alias, mv.version)
    return str(mv.version)


def set_alias(tracking_uri: str, name: str, alias: str, version: str) -> None:
    """Point ``alias`` of model ``name`` at ``version``."""
    client(tracking_uri).set_registered_model_alias(name, alias, str(version))
