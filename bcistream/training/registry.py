"""Registry access: log and register a fitted pipeline, load it back, read and move aliases.

Models are stored with MLflow's sklearn flavor in the skops format, never pickle. Loading does not
go through ``mlflow.sklearn.load_model``: that reads the trusted-types allow-list from the model's
own MLmodel file (so a crafted artifact could trust anything) and therefore demands
``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``. Here the allow-list is `TRUSTED_TYPES`, held by this
code, and skops refuses any other type.

Aliases (``champion``, ``challenger``) replace MLflow's deprecated stages.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sklearn.pipeline import Pipeline

from bcistream.data.profiles import Profile
from bcistream.decoders import decoder_name
from bcistream.errors import BcistreamError, ProfileError
from bcistream.pipeline import pipeline_profile

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
]

log = logging.getLogger(__name__)

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Artifact downloads are local copies of a few small files; their progress bars are noise.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

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

#: Artifact name of the model inside a run.
MODEL_ARTIFACT = "model"


class ModelError(BcistreamError):
    """A model cannot be found, loaded or registered."""


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


@contextlib.contextmanager
def tracking(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (runs, log_model) at ``tracking_uri`` for the block, then restore.

    Only the tracking URI is touched: registry calls go through an explicit `client`, so no
    process-wide registry URI is left behind for the next caller.
    """
    import mlflow
    from mlflow.tracking._tracking_service import utils as _tracking_utils

    before = getattr(_tracking_utils, "_tracking_uri", None)
    env_before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before)  # None also clears the env var MLflow set
        if env_before is not None:
            os.environ["MLFLOW_TRACKING_URI"] = env_before


#: Seconds `client` keeps retrying a locked or busy registry (`set_registry_wait`); ``None``: the
#: settings' ``registry_wait_s`` (``BCISTREAM_REGISTRY_WAIT_S``, 30 s).
_REGISTRY_WAIT_S: float | None = None


class RegistryBusyError(ModelError):
    """The registry's database stayed locked (sqlite ``database is locked``) or unreachable."""


def set_registry_wait(seconds: float) -> None:
    """How long `client` retries a locked or busy registry before `RegistryBusyError` (>= 0)."""
    global _REGISTRY_WAIT_S
    if not seconds >= 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    _REGISTRY_WAIT_S = float(seconds)


def is_busy_error(exc: BaseException) -> bool:
    """A locked sqlite file or a database that refused the connection (worth a retry)."""
    text = str(exc).lower()
    if "database is locked" in text or "database is busy" in text:
        return True
    return type(exc).__name__ == "OperationalError" and any(
        key in text for key in ("locked", "busy", "could not connect", "connection refused", "timeout",
                                "timed out"))


def client(tracking_uri: str, *, wait_s: float | None = None):
    """An `mlflow.MlflowClient` on ``tracking_uri`` (also the registry), patient with a busy database.

    While another process holds the sqlite file's write lock, opening the client and every call
    fail with ``database is locked`` (after sqlite's own ~5 s busy wait). Each is retried with
    backoff for ``wait_s`` seconds (default: `set_registry_wait`, else the settings'
    ``registry_wait_s``, 30 s); a failed sqlite statement wrote nothing, so retrying is safe.

    Raises
    ------
    RegistryBusyError
        The registry stayed locked or unreachable for ``wait_s`` seconds.
    """
    from mlflow import MlflowClient

    if wait_s is not None:
        budget = wait_s
    elif _REGISTRY_WAIT_S is not None:
        budget = _REGISTRY_WAIT_S
    else:
        from bcistream.settings import Settings

        budget = Settings().registry_wait_s
    inner = _retry(lambda: MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri),
                   tracking_uri, budget)
    return _PatientClient(inner, tracking_uri, budget)


def _retry(call: Any, tracking_uri: str, budget: float) -> Any:
    import time

    deadline = time.monotonic() + budget
    pause = 0.2
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_busy_error(exc):
                raise
            if time.monotonic() + pause > deadline:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise RegistryBusyError(
                    f"the registry {tracking_uri} stayed locked or busy for {budget:g} s ({first[:160]}); "
                    "another process is writing to it — try again when it is done") from None
            log.warning("registry %s is busy (%s); retrying", tracking_uri, type(exc).__name__)
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


class _PatientClient:
    """Forwards to an `mlflow.MlflowClient`, retrying calls that meet a busy database (`client`)."""

    def __init__(self, inner: Any, tracking_uri: str, budget: float) -> None:
        self._inner, self._uri, self._budget = inner, tracking_uri, budget

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return _retry(lambda: attr(*args, **kwargs), self._uri, self._budget)

        return call


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


def log_pipeline(pipe: Pipeline, *, metadata: dict[str, Any] | None = None):
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


def alias_version(tracking_uri: str, name: str, alias: str = "champion") -> str | None:
    """The version ``alias`` points at, or ``None`` (no such model or alias). Cheap: one query."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client(tracking_uri).get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if is_not_found(exc):
            return None
        raise ModelError(f"{tracking_uri}: cannot read alias '{alias}' of '{name}': "
                         f"{read_failure(exc)}") from None


def model_versions(tracking_uri: str, name: str) -> list[dict[str, Any]]:
    """Every version of ``name``, newest first: version, aliases, creation time, run id and tags."""
    import time

    from mlflow.exceptions import MlflowException

    try:
        found = client(tracking_uri).search_model_versions(f"name = '{name}'")
    except MlflowException as exc:
        raise ModelError(f"{tracking_uri}: cannot list versions of '{name}': {read_failure(exc)}") from None
    # search_model_versions leaves ``aliases`` empty; the registered model holds them.
    by_version: dict[str, list[str]] = {}
    if found:
        for alias, version in client(tracking_uri).get_registered_model(name).aliases.items():
            by_version.setdefault(str(version), []).append(alias)
    rows = []
    for mv in sorted(found, key=lambda m: int(m.version), reverse=True):
        rows.append({
            "version": str(mv.version),
            "aliases": sorted(by_version.get(str(mv.version), [])),
            "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(mv.creation_timestamp / 1000)),
            "run_id": mv.run_id or (mv.tags or {}).get("run_id"),
            "tags": dict(mv.tags or {}),
        })
    return rows


def registered_names(tracking_uri: str) -> list[str]:
    """Names of every registered model with its aliases, ``["bcistream-A01 (champion, challenger)", ...]``.

    Used by error messages; an unreadable registry gives an empty list.
    """
    try:
        found = client(tracking_uri, wait_s=0).search_registered_models(max_results=1000)
    except Exception:  # noqa: BLE001  (an error message must not fail itself)
        return []
    out = []
    for m in sorted(found, key=lambda m: m.name):
        aliases = sorted((m.aliases or {}).keys())
        out.append(m.name + (f" ({', '.join(aliases)})" if aliases else ""))
    return out


def is_not_found(exc: BaseException) -> bool:
    """An MLflow answer meaning "no such model, alias or version" (not an unreadable registry)."""
    return getattr(exc, "error_code", None) in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND",
                                                "INVALID_PARAMETER_VALUE")


def read_failure(exc: BaseException) -> str:
    """Why the registry could not be read, short: an HTTP server that is down is "connection
    refused" / "timed out" (MLflow's message is urllib3's ~400-character retry report)."""
    text = str(getattr(exc, "message", None) or exc).strip()
    low = text.lower()
    for needle, short in (("connection refused", "connection refused (is the MLflow server up?)"),
                          ("timed out", "timed out"), ("name or service not known", "unknown host")):
        if needle in low:
            return short
    return (text.splitlines() or [type(exc).__name__])[0][:200]


def missing_model(tracking_uri: str, name: str, *, alias: str | None = None,
                  version: str | None = None) -> str:
    """Why ``models:/NAME@ALIAS`` (or ``NAME/VERSION``) finds nothing, in one line.

    A name the registry does not hold is said so, with the names it does hold (and their aliases);
    a known name without that alias or version lists the ones it has. Never raises (an error
    message must not fail itself): an unreadable registry gives the plain statement.
    """
    from mlflow.exceptions import MlflowException

    why = ""
    try:
        model = client(tracking_uri, wait_s=0).get_registered_model(name)
    except MlflowException as exc:
        if not is_not_found(exc):
            model, why = False, read_failure(exc)
        else:
            model = None
    except Exception as exc:  # noqa: BLE001
        model, why = False, read_failure(exc)
    if model is None:
        return f"no registered model named '{name}' in {tracking_uri} ({_names_hint(tracking_uri)})"
    if model is False:  # unreadable (down, refused, locked): that is the answer, not "no alias"
        what = f"alias '{alias}'" if alias is not None else f"version {version}"
        return f"cannot read {what} of model '{name}' from {tracking_uri}: {why}"
    if alias is not None:
        have = sorted((model.aliases or {}).keys())
        its = f"its aliases: {', '.join(have)}" if have else "it has no alias yet: promote a version"
        return f"model '{name}' has no alias '{alias}' in {tracking_uri} ({its})"
    try:
        versions = sorted((int(v.version) for v in client(tracking_uri, wait_s=0).search_model_versions(
            f"name = '{name}'")), reverse=True)
    except Exception:  # noqa: BLE001
        versions = []
    its = f"its versions: {', '.join(map(str, versions[:20]))}" if versions else "it has no versions"
    return f"model '{name}' has no version {version} in {tracking_uri} ({its})"


def _names_hint(tracking_uri: str) -> str:
    names = registered_names(tracking_uri)
    return f"registered models: {'; '.join(names[:20])}" if names else "the registry holds no models"


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
