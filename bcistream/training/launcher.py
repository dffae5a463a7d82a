"""Run ``bcistream train|tune|retrain`` as a Kubernetes Job: print it, or submit, wait and stream logs.

The Job itself comes from `bcistream.training.job_templates` (the shipped manifests, validated by the
``kubernetes`` client's models). Submitting, waiting and log streaming talk to the API server through
the ``kubernetes`` client, with in-cluster credentials first, then the kubeconfig.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bcistream.errors import BcistreamError
from bcistream.training.job_templates import (
    KINDS,
    OVERLAYS,
    build_job,
    job_to_dict,
    job_to_yaml,
    kubernetes_client,
    load_templates,
    merge_args,
    template_for,
)

__all__ = [
    "KINDS",
    "OVERLAYS",
    "JobFailedError",
    "JobProgress",
    "LaunchResult",
    "build_job",
    "job_to_dict",
    "job_to_yaml",
    "launch_job",
    "load_templates",
    "merge_args",
    "stream_logs",
    "submit_job",
    "template_for",
    "wait_for_job",
]


class JobFailedError(BcistreamError):
    """The Job ran and failed (its pods' logs say why)."""


@dataclass(frozen=True)
class JobProgress:
    """A snapshot of a running Job's pods."""

    name: str
    completions: int
    succeeded: int
    failed: int
    active: int


@dataclass(frozen=True)
class LaunchResult:
    """What ``launch_job`` did: the Job it built, and its outcome when it waited."""

    job: Any  # kubernetes.client.V1Job
    submitted: bool
    outcome: str | None = None  # "Complete" / "Failed" when waited for


def _load_credentials() -> None:
    from kubernetes import config

    try:
        config.load_incluster_config()
        return
    except config.ConfigException:
        pass
    try:
        config.load_kube_config()
    except (config.ConfigException, OSError) as exc:
        raise BcistreamError(
            "no Kubernetes credentials: not running in a cluster and no usable kubeconfig "
            f"({exc}); set KUBECONFIG or use --dry-run to print the Job"
        ) from None


def _api_errors() -> tuple[type[Exception], ...]:
    """What a call to the API server may raise: an HTTP error answer, or no answer at all."""
    import urllib3

    return (kubernetes_client().ApiException, urllib3.exceptions.HTTPError)


def _api_error(action: str, exc: Exception) -> BcistreamError:
    if not hasattr(exc, "status"):
        return BcistreamError(f"{action} failed: cannot reach the Kubernetes API server ({exc})")
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", "") or type(exc).__name__
    hint = ""
    if status == 403:
        hint = " (the launcher's identity needs the bcistream-launcher Role: create/get/watch jobs)"
    elif status == 409:
        hint = " (a Job with that name exists; pick another --name)"
    elif status == 404:
        hint = " (does the namespace exist? apply the k8s overlay first)"
    return BcistreamError(f"{action} failed: HTTP {status} {reason}{hint}")


def submit_job(job: Any, *, batch_api: Any = None) -> Any:
    """Create the Job in its namespace; return the server's copy."""
    client = kubernetes_client()
    if batch_api is None:
        _load_credentials()
        batch_api = client.BatchV1Api()
    namespace = job.metadata.namespace or "default"
    try:
        return batch_api.create_namespaced_job(namespace=namespace, body=job)
    except _api_errors() as exc:
        raise _api_error(f"creating Job {job.metadata.name} in namespace {namespace}", exc) from None


def _outcome(status: Any) -> str | None:
    for cond in status.conditions or []:
        if cond.status == "True" and cond.type in ("Complete", "Failed"):
            return cond.type
    return None


def wait_for_job(
    name: str,
    namespace: str,
    *,
    batch_api: Any,
    completions: int = 1,
    timeout: float | None = None,
    poll: float = 2.0,
    on_progress: Callable[[JobProgress], None] | None = None,
    on_tick: Callable[[], None] | None = None,
) -> str:
    """Poll the Job until it completes or fails; return ``"Complete"`` or raise `JobFailedError`.

    ``on_progress`` gets a `JobProgress` whenever the pod counts change; ``on_tick`` runs on every
    poll (the log streamer hooks in there).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    while True:
        try:
            job = batch_api.read_namespaced_job_status(name=name, namespace=namespace)
        except _api_errors() as exc:
            raise _api_error(f"reading Job {name}", exc) from None
        status = job.status
        snap = JobProgress(name, completions, status.succeeded or 0, status.failed or 0, status.active or 0)
        if on_progress is not None and snap != last:
            on_progress(snap)
        last = snap
        if on_tick is not None:
            on_tick()
        outcome = _outcome(status)
        if outcome == "Complete":
            return outcome
        if outcome == "Failed":
            why = next((c.message or c.reason for c in status.conditions if c.type == "Failed"), "")
            raise JobFailedError(f"Job {namespace}/{name} failed: {why or 'see its pod logs'}")
        if deadline is not None and time.monotonic() > deadline:
            raise BcistreamError(f"Job {namespace}/{name} still running after {timeout:g} s "
                                 f"({snap.succeeded}/{completions} done); it keeps running in the cluster")
        time.sleep(poll)


def stream_logs(name: str, namespace: str, *, core_api: Any, out: TextIO, done: set[str]) -> None:
    """Stream the logs of the Job's started pods not streamed yet (``done`` remembers them).

    Each pod is followed to its end before the next, so parallel tune workers appear one after
    the other, each prefixed with its pod name.
    """
    pods = core_api.list_namespaced_pod(namespace=namespace, label_selector=f"job-name={name}").items
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        pod_name = pod.metadata.name
        if pod_name in done or pod.status.phase in (None, "Pending", "Unknown"):
            continue
        done.add(pod_name)
        resp = core_api.read_namespaced_pod_log(name=pod_name, namespace=namespace, follow=True,
                                                _preload_content=False)
        pending = b""
        for chunk in resp.stream():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                out.write(f"[{pod_name}] {line.decode(errors='replace')}\n")
        if pending:
            out.write(f"[{pod_name}] {pending.decode(errors='replace')}\n")
        resp.release_conn()


def launch_job(
    kind: str,
    args: list[str] | None = None,
    *,
    namespace: str | None = None,
    image: str | None = None,
    dry_run: bool = False,
    overlay: str = "gke",
    template: Path | None = None,
    name: str | None = None,
    parallelism: int | None = None,
    replace_args: bool = False,
    wait: bool = True,
    logs: bool = False,
    timeout: float | None = None,
    poll: float = 2.0,
    out: TextIO | None = None,
    on_progress: Callable[[JobProgress], None] | None = None,
    batch_api: Any = None,
    core_api: Any = None,
) -> LaunchResult:
    """Build ``bcistream KIND ARGS`` as a Job; print it (dry run) or submit it and wait.

    Parameters
    ----------
    kind, args, overlay, template, namespace, image, name, parallelism, replace_args
        See `build_job`.
    dry_run : bool
        Print the Job as YAML to ``out`` and contact nothing.
    wait : bool
        After submitting, poll until the Job completes (raises `JobFailedError` if it fails).
    logs : bool
        While waiting, stream the pods' logs to ``out``.
    timeout, poll : float
        Give up waiting after ``timeout`` seconds (the Job keeps running); poll interval.
    batch_api, core_api
        ``BatchV1Api`` / ``CoreV1Api`` instances; default: built from in-cluster or kubeconfig
        credentials.
    """
    out = out if out is not None else sys.stdout
    job = build_job(kind, args, overlay=overlay, template=template, namespace=namespace, image=image,
                    name=name, parallelism=parallelism, replace_args=replace_args)
    if dry_run:
        out.write(job_to_yaml(job))
        return LaunchResult(job=job, submitted=False)
    client = kubernetes_client()
    if batch_api is None:
        _load_credentials()
        batch_api = client.BatchV1Api()
    created = submit_job(job, batch_api=batch_api)
    job_name = created.metadata.name if created is not None and created.metadata else job.metadata.name
    job_ns = job.metadata.namespace or "default"
    out.write(f"job {job_ns}/{job_name} created\n")
    if not wait:
        return LaunchResult(job=job, submitted=True)
    tick = None
    if logs:
        core = core_api if core_api is not None else client.CoreV1Api()
        streamed: set[str] = set()

        def tick() -> None:
            stream_logs(job_name, job_ns, core_api=core, out=out, done=streamed)

    outcome = wait_for_job(job_name, job_ns, batch_api=batch_api, completions=job.spec.completions or 1,
                           timeout=timeout, poll=poll, on_progress=on_progress, on_tick=tick)
    out.write(f"job {job_ns}/{job_name}: {outcome}\n")
    return LaunchResult(job=job, submitted=True, outcome=outcome)
