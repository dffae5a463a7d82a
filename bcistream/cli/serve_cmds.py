"""Serving commands: ``serve`` (the BentoML service) and ``classify`` (a recording through it)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bcistream.cli.app import app
from bcistream.cli.common import console, port_in_use, settings
from bcistream.cli.tables import print_table

#: The service's import path for ``bentoml serve`` / ``bentofile.yaml``.
SERVICE = "bcistream.serving.service:BcistreamService"


def serve_env(model: str | None, tracking_uri: str | None) -> dict[str, str]:
    """Environment of one ``bentoml serve`` child: a private BentoML home, no tracking.

    BentoML keeps its Prometheus multiprocess files in ``$BENTOML_HOME/prometheus_multiproc_dir``
    and empties that folder when a server starts, so two servers sharing a home break each other's
    ``/metrics`` (an empty body, or mixed counters). Each call therefore makes a fresh temporary
    BentoML home (``bcistream-serve-*`` in the system's temporary folder); the caller removes it
    when the server exits. ``serve`` runs the service from its import path, so nothing else of a
    BentoML home (bento and model stores) is needed there.

    Parameters
    ----------
    model : str or None
        ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` to serve (``None``: the service's default).
    tracking_uri : str or None
        MLflow tracking/registry URI (``None``: the settings').

    Returns
    -------
    dict of str to str
        The child's environment; ``BENTOML_HOME`` is the new folder.
    """
    cfg = settings()
    env = dict(os.environ)
    env["BENTOML_HOME"] = tempfile.mkdtemp(prefix="bcistream-serve-")
    env["BENTOML_DO_NOT_TRACK"] = "true"
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if model:
        env["BCISTREAM_MODEL_URI"] = model
    env["BCISTREAM_TRACKING_URI"] = tracking_uri or cfg.mlflow_uri
    # MLflow resolves models:/ artifact downloads through its registry URI, which falls back to these
    # variables: an inherited value would fetch artifacts from another registry than the alias.
    env["MLFLOW_TRACKING_URI"] = env["MLFLOW_REGISTRY_URI"] = env["BCISTREAM_TRACKING_URI"]
    return env


def describe_model(model_uri: str, tracking_uri: str, *, given: bool = False) -> tuple[bool, str]:
    """What ``serve`` will serve: ``(found, one line)``, asking the registry once.

    Parameters
    ----------
    model_uri : str
        ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.
    tracking_uri : str
        The registry.
    given : bool
        The user named the model (``--model``): the hint does not suggest passing one.
    """
    from bcistream.serving.holder import parse_model_uri
    from bcistream.training.registry import alias_version, client

    uri = parse_model_uri(model_uri)
    try:
        if uri.version is None:
            version = alias_version(tracking_uri, uri.name, uri.alias or "champion")
        else:
            version = str(client(tracking_uri).get_model_version(uri.name, uri.version).version)
    except Exception as exc:  # noqa: BLE001  (unreachable registry, unknown version: say so, serve anyway)
        from bcistream.training.registry import ModelError, read_failure

        why = str(exc) if isinstance(exc, ModelError) else f"{tracking_uri}: {read_failure(exc)}"
        return False, (f"cannot read {model_uri}: {why}; the service starts, answers 503 and keeps "
                       "polling the registry")
    if version is None:
        from bcistream.training.registry import missing_model

        return False, (f"NO MODEL: {missing_model(tracking_uri, uri.name, alias=uri.alias or 'champion')}. "
                       "The service answers 503 until one appears: train and promote one "
                       "(bcistream train --data FOLDER --subject 1, or make demo)"
                       + ("" if given else ", or pass --model models:/NAME@ALIAS"))
    follows = f"following alias '{uri.alias}'" if uri.version is None else "fixed version"
    return True, f"serving {uri.name} version {version} ({follows}; registry {tracking_uri})"


def refuse_unknown_model(model_uri: str, tracking_uri: str) -> None:
    """Refuse a ``--model`` the registry has never heard of (a typo must not serve 503 forever).

    A registered model without the alias yet is a wait (a promotion may come); a name the registry
    does not hold, or a fixed version it does not have, is refused. An unreachable registry is
    not refused here: `describe_model` warns and the service keeps retrying.

    Raises
    ------
    BcistreamError
        One line: what is missing, what the registry holds, and ``--wait-for-model``.
    """
    from mlflow.exceptions import MlflowException

    from bcistream.errors import BcistreamError
    from bcistream.serving.holder import parse_model_uri
    from bcistream.training.registry import client, is_not_found, missing_model

    uri = parse_model_uri(model_uri)
    try:
        reg = client(tracking_uri, wait_s=0)
        if uri.version is None:
            reg.get_registered_model(uri.name)
        else:
            reg.get_model_version(uri.name, uri.version)
    except MlflowException as exc:
        if not is_not_found(exc):
            return
        why = (missing_model(tracking_uri, uri.name, alias=uri.alias or "champion") if uri.version is None
               else missing_model(tracking_uri, uri.name, version=uri.version))
        raise BcistreamError(f"{model_uri}: {why}; --wait-for-model serves anyway (503 until it "
                             "exists)") from None
    except Exception:  # noqa: BLE001  (unreachable registry: describe_model says so)
        return


def default_champion(base: str, tracking_uri: str) -> str | None:
    """``models:/NAME@champion`` of the one model ``base`` or ``base-LABEL`` with a champion.

    Every trained model is registered as ``NAME-LABEL`` (``bcistream-A01``, ``bcistream-demo-A01``),
    so ``models:/bcistream@champion`` rarely exists; with exactly one champion among them it is the
    obvious default. ``None`` when there is none (``serve`` then warns and waits for one).

    Raises
    ------
    BcistreamError
        Several champions: the user must choose; the message lists them.
    """
    from bcistream.errors import BcistreamError
    from bcistream.training.registry import client

    try:
        found = client(tracking_uri).search_registered_models(max_results=1000)
    except Exception:  # noqa: BLE001  (unreachable registry: describe_model says so)
        return None
    names = sorted(m.name for m in found if (m.name == base or m.name.startswith(base + "-"))
                   and "champion" in (m.aliases or {}))
    if len(names) > 1:
        raise BcistreamError(f"several champions in {tracking_uri}: {', '.join(names)}; choose one with "
                             f"--model models:/NAME@champion")
    return f"models:/{names[0]}@champion" if names else None


@app.command()
def serve(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 3000,
    model: Annotated[str | None, typer.Option(
        help="models:/NAME@ALIAS (followed) or models:/NAME/VERSION. Default: "
             "$BCISTREAM_MODEL_URI, else the one NAME-LABEL@champion in the registry.")] = None,
    host: Annotated[str, typer.Option(help="Interface to bind (0.0.0.0 exposes the service).")] = "127.0.0.1",
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking/registry URI.")] = None,
    wait_for_model: Annotated[bool, typer.Option(
        "--wait-for-model",
        help="Serve even when --model names a model or version the registry does not hold yet "
             "(503 until it appears), e.g. a Kubernetes pod started before the first training.")] = False,
) -> None:
    """Run the BentoML service (``bentoml serve``) with the registry champion."""
    from bcistream.errors import BcistreamError

    if port_in_use(host, port):
        raise BcistreamError(f"port {port} on {host} is already in use (another bcistream serve?): "
                             "choose another --port")
    given = model
    if model:
        from bcistream.serving.holder import parse_model_uri

        parse_model_uri(model)  # a bad URI is a one-line error here, not a crash in the worker
    from bcistream.serving.config import ServingConfig

    serving = ServingConfig()
    if model is None and serving.model_uri is None:
        model = default_champion(serving.model_name, tracking_uri or settings().mlflow_uri)
    env = serve_env(model, tracking_uri)
    try:
        _run_server(env, port, host, model or serving.resolved_model_uri(), given, wait_for_model)
    finally:
        shutil.rmtree(env["BENTOML_HOME"], ignore_errors=True)


def _run_server(env: dict[str, str], port: int, host: str, model_uri: str, given: str | None,
                wait_for_model: bool) -> None:
    """Say what is served, run ``bentoml serve`` with ``env`` until it exits, forward SIGTERM.

    Raises
    ------
    typer.Exit
        The server failed (its exit code).
    """
    if given and not wait_for_model:
        refuse_unknown_model(given, env["BCISTREAM_TRACKING_URI"])
    found, line = describe_model(model_uri, env["BCISTREAM_TRACKING_URI"], given=bool(given))
    console.print(line if found else f"[bold red]warning:[/bold red] {line}", highlight=False)
    cmd = [sys.executable, "-m", "bentoml", "serve", SERVICE, "--port", str(port), "--host", host]
    proc = subprocess.Popen(cmd, env=env)

    def forward(signum, _frame) -> None:
        proc.send_signal(signum)

    old = signal.signal(signal.SIGTERM, forward)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        code = proc.wait()
    finally:
        signal.signal(signal.SIGTERM, old)
    if code not in (0, -signal.SIGTERM, -signal.SIGINT):
        raise typer.Exit(code if code > 0 else 1)


@app.command()
def classify(
    file: Annotated[Path, typer.Argument(help="A recording (GDF/EDF/BDF/FIF/XDF).")],
    url: Annotated[str | None, typer.Option(help="Service URL (default: $BCISTREAM_SERVICE_URL, else "
                                                 "http://127.0.0.1:3000).")] = None,
    labels: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, help="classlabel .mat file for cues of unknown class.")] = None,
    token: Annotated[str | None, typer.Option(envvar="BCISTREAM_API_TOKEN",
                                              help="Bearer token (default $BCISTREAM_API_TOKEN).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw JSON answer.")] = False,
) -> None:
    """Classify every trial of a recording through a running service."""
    import json

    from bcistream.data.loader import labels_path_for
    from bcistream.serving.client import Client

    # The loader's rule, as `info`/`train` apply it: A0xE.mat beside an A0xE recording. Said after
    # the answer (an error must stay the only line).
    beside = labels_path_for(file) if labels is None else None
    labels = labels if labels is not None else beside
    with Client(url or settings().service_url, token=token) as client:
        result = client.classify_file(file, labels=labels)
    if as_json:
        typer.echo(json.dumps({"version": result.version, "accuracy": result.accuracy, "kappa": result.kappa,
                               "trials": result.trials, "excluded": result.excluded}))
        return
    table = Table("cue", "sample", "true", "predicted", "p(predicted)",
                  title=f"{file.name} — model version {result.version}")
    for t in result.trials:
        p = max(t["probabilities"])
        table.add_row(str(t["cue_index"]), str(t["cue_sample"]), t["true_label"] or "—", t["label"],
                      f"{p:.2f}")
    print_table(console, table)
    if beside is not None:
        console.print(f"labels: {beside} (beside the recording)", highlight=False, soft_wrap=True)
    if result.accuracy is not None:
        console.print(f"accuracy {result.accuracy:.3f}   kappa {result.kappa:.3f}   "
                      f"({len(result.trials)} trials, {len(result.excluded)} excluded)")
    else:
        console.print(f"{len(result.trials)} trials, {len(result.excluded)} excluded; no labels to score")
