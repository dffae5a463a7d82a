"""Loading a model back: a registered version or a saved model folder, with our own allow-list of types.

Models are stored with MLflow's sklearn flavor in the skops format, never pickle. Loading does not
go through ``mlflow.sklearn.load_model``: that reads the trusted-types allow-list from the model's
own MLmodel file (so a crafted artifact could trust anything) and therefore demands
``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``. Here the allow-list is `TRUSTED_TYPES`, held by this
code, and skops refuses any other type.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sklearn.pipeline import Pipeline

from bcistream.data.profiles import Profile
from bcistream.decoders import decoder_name
from bcistream.errors import ProfileError
from bcistream.pipeline import pipeline_profile
from bcistream.training.registry_client import client
from bcistream.training.registry_errors import ModelError
from bcistream.training.registry_lookup import missing_model

__all__ = ["TRUSTED_TYPES", "LoadedModel", "load_model"]

#: Types skops may rebuild beyond its built-in safe set: the project's filters and decoder steps,
#: mne's CSP, pyriemann's covariance / tangent space / MDM (plain numpy attributes), and the
#: calibration internals of ``CalibratedClassifierCV``. Nothing else is ever trusted.
TRUSTED_TYPES: tuple[str, ...] = (
    "bcistream.pipeline.filter.CausalBandpass",
    "bcistream.pipeline.filterbank.CausalFilterBank",
    "bcistream.decoders.steps.BandCSP",
    "bcistream.decoders.steps.MutualInfoSelect",
    "mne.decoding.csp.CSP",
    "bcistream.pipeline.csp.CSP",
    "pyriemann.estimation.Covariances",
    "pyriemann.tangentspace.TangentSpace",
    "pyriemann.classification.MDM",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
)


@dataclass(frozen=True)
class LoadedModel:
    """A fitted pipeline loaded from the registry (or a saved model folder).

    Attributes
    ----------
    pipeline : Pipeline
        The one decoding pipeline, fitted.
    version : str
        Registry version (``"3"``), or ``"local-<id>"`` for a model folder.
    name : str
        Registered model name (folder name for a local model).
    alias : str or None
        The alias it was loaded through, or the first alias the version carries.
    profile : Profile
        The dataset profile the pipeline carries.
    metrics : dict
        Metrics recorded at training time (the run's metrics).
    run_id : str or None
        MLflow run that produced it.
    """

    pipeline: Pipeline
    version: str
    name: str
    alias: str | None
    profile: Profile
    metrics: dict[str, float]
    run_id: str | None


def _parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    # models:/name@alias -> (name, None, alias); models:/name/3 -> (name, "3", None)
    rest = uri[len("models:/"):].strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        if name and alias and "/" not in alias:
            return name, None, alias
    elif "/" in rest:
        name, version = rest.rsplit("/", 1)
        if name and version.isdigit():
            return name, version, None
    raise ModelError(f"model URI '{uri}': expected models:/NAME@ALIAS or models:/NAME/VERSION")


def _load_folder(folder: Path) -> tuple[Pipeline, dict[str, Any]]:
    """Load an MLflow sklearn model folder with OUR trusted types; refuse anything but skops."""
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    mlmodel = folder / "MLmodel"
    if not mlmodel.is_file():
        raise ModelError(f"{folder}: not a saved model folder (no MLmodel file)")
    try:
        spec = yaml.safe_load(mlmodel.read_text())
        flavor = spec["flavors"]["sklearn"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ModelError(f"{mlmodel}: not an MLflow sklearn model ({exc})") from None
    if flavor.get("serialization_format") != "skops":
        raise ModelError(
            f"{folder}: model is stored as '{flavor.get('serialization_format')}', only skops "
            "models are loaded (pickle can run arbitrary code)"
        )
    path = folder / flavor.get("pickled_model", "model.skops")
    try:
        pipe = skops.io.load(path, trusted=list(TRUSTED_TYPES))
    except UntrustedTypesFoundException as exc:
        raise ModelError(f"{path}: refused, the model holds untrusted types ({exc})") from None
    except Exception as exc:  # skops raises many types for damaged files
        raise ModelError(f"{path}: cannot load the model ({type(exc).__name__}: {exc})") from None
    try:
        decoder_name(pipe)
    except ProfileError:
        raise ModelError(f"{path}: not a bcistream pipeline (got {type(pipe).__name__})") from None
    return pipe, spec


def load_model(model_uri: str, tracking_uri: str | None = None) -> LoadedModel:
    """Load a registered model or a saved model folder.

    Parameters
    ----------
    model_uri : str
        ``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, or a local folder holding a saved model
        (``MLmodel`` + ``model.skops``, as written by ``mlflow.sklearn.save_model``).
    tracking_uri : str, optional
        MLflow tracking/registry URI (unused for a local folder); default: the settings'
        ``mlflow_uri`` (``BCISTREAM_MLFLOW_URI``), as the commands use.

    Raises
    ------
    ModelError
        Unknown model, version or alias; a model not in skops format or holding untrusted types.
    """
    from mlflow.exceptions import MlflowException

    if tracking_uri is None and model_uri.startswith("models:/"):
        from bcistream.settings import Settings

        tracking_uri = Settings().mlflow_uri
    if not model_uri.startswith("models:/"):
        folder = Path(model_uri.removeprefix("file://"))
        if not folder.is_dir():
            raise ModelError(f"model '{model_uri}': neither models:/NAME@ALIAS, models:/NAME/N nor a folder")
        pipe, spec = _load_folder(folder)
        meta = spec.get("metadata") or {}
        uid = str(spec.get("model_uuid") or spec.get("model_id") or "")
        return LoadedModel(
            pipeline=pipe, version=f"local-{uid[-8:]}" if uid else "local", name=folder.name,
            alias=None, profile=pipeline_profile(pipe),
            metrics={k: float(v) for k, v in (meta.get("metrics") or {}).items()},
            run_id=spec.get("run_id"),
        )
    name, version, alias = _parse_models_uri(model_uri)
    c = client(tracking_uri)
    try:
        mv = c.get_model_version_by_alias(name, alias) if alias else c.get_model_version(name, version)
    except MlflowException:
        raise ModelError(f"{model_uri}: {missing_model(tracking_uri, name, alias=alias, version=version)}"
                         ) from None
    run_id = mv.run_id or (mv.tags or {}).get("run_id")
    tmp = Path(tempfile.mkdtemp(prefix="bcistream-model-"))
    try:
        import mlflow.artifacts

        try:
            # The version's own artifact location: no process-wide registry URI is consulted.
            source = c.get_model_version_download_uri(name, mv.version)
            local = mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=tracking_uri,
                                                        dst_path=str(tmp))
        except MlflowException as exc:
            raise ModelError(f"{model_uri}: cannot download version {mv.version}: {exc.message}") from None
        pipe, _ = _load_folder(Path(local))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    metrics: dict[str, float] = {}
    if run_id:
        with contextlib.suppress(MlflowException):
            metrics = dict(c.get_run(run_id).data.metrics)
    return LoadedModel(
        pipeline=pipe, version=str(mv.version), name=name,
        alias=alias or (mv.aliases[0] if mv.aliases else None),
        profile=pipeline_profile(pipe), metrics=metrics, run_id=run_id,
    )
