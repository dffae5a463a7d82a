"""Job objects for ``bcistream train|tune|retrain`` built from the shipped manifests (pure; no API calls).

The Job is not written here: it comes from ``bcistream/k8s_templates/<overlay>.yaml``, which
``k8s/tools/render_templates.py`` renders from the kustomize overlays (a test keeps them identical),
so the manifests are the one source of truth. Only the name, namespace, image, container arguments
and (for tune) the number of parallel workers are substituted; the result is the ``kubernetes``
client's ``V1Job`` model, which validates every field.
"""

from __future__ import annotations

import copy
import re
import secrets
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from bcistream.errors import BcistreamError

__all__ = [
    "KINDS",
    "OVERLAYS",
    "build_job",
    "job_to_dict",
    "job_to_yaml",
    "kubernetes_client",
    "load_templates",
    "merge_args",
    "template_for",
]

#: Batch commands that can run as a Job.
KINDS = ("train", "tune", "retrain")
#: Overlays whose rendered templates ship with the package.
OVERLAYS = ("local", "gke")

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# A Job's name becomes the value of its pods' job-name label: 63 characters at most.
_MAX_JOB_NAME = 63


def kubernetes_client():
    """The ``kubernetes.client`` module, or a clear error when the k8s extra is missing."""
    try:
        from kubernetes import client
    except ImportError:  # pragma: no cover - the k8s extra is part of [all]
        raise BcistreamError("the Kubernetes launcher needs the k8s extra: "
                             "pip install 'bcistream[k8s]'") from None
    return client


def load_templates(overlay: str = "gke", path: Path | None = None) -> list[dict]:
    """The Job/CronJob objects of one overlay (or of a YAML file rendered from your own overlay).

    Parameters
    ----------
    overlay : str
        ``"local"`` or ``"gke"``: the templates shipped as package data.
    path : Path, optional
        A file produced by ``kubectl kustomize YOUR_OVERLAY`` instead of the shipped templates.
    """
    import yaml

    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise BcistreamError(f"cannot read Job template file {path}: {exc.strerror}") from None
        where = str(path)
    else:
        if overlay not in OVERLAYS:
            raise BcistreamError(f"unknown overlay '{overlay}': expected one of {', '.join(OVERLAYS)}")
        text = resources.files("bcistream.k8s_templates").joinpath(f"{overlay}.yaml").read_text()
        where = f"overlay '{overlay}'"
    try:
        docs = [doc for doc in yaml.safe_load_all(text) if doc]
    except yaml.YAMLError as exc:
        raise BcistreamError(f"Job template {where} is not valid YAML: {exc}") from None
    if not all(isinstance(doc, dict) and "kind" in doc for doc in docs):
        raise BcistreamError(f"Job template {where} holds something other than Kubernetes objects")
    return docs


def _component(obj: dict) -> str | None:
    return obj.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component")


def template_for(kind: str, objects: list[dict]) -> dict:
    """The Job object (as a dict) that runs ``bcistream KIND``.

    train and tune come from their Job templates; retrain is instantiated from the CronJob's
    ``jobTemplate``, as ``kubectl create job --from=cronjob/...`` does.
    """
    if kind not in KINDS:
        raise BcistreamError(f"unknown job kind '{kind}': expected one of {', '.join(KINDS)}")
    for obj in objects:
        if obj["kind"] == "Job" and _component(obj) == kind:
            return copy.deepcopy(obj)
    for obj in objects:
        if obj["kind"] == "CronJob" and _component(obj) == kind:
            meta = obj["metadata"]
            tmpl = copy.deepcopy(obj["spec"]["jobTemplate"])
            labels = {**meta.get("labels", {}), **tmpl.get("metadata", {}).get("labels", {})}
            job_meta = {"name": meta["name"], "labels": labels,
                        "annotations": {"cronjob.kubernetes.io/instantiate": "manual"}}
            if "namespace" in meta:
                job_meta["namespace"] = meta["namespace"]
            return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta, "spec": tmpl["spec"]}
    raise BcistreamError(f"no Job or CronJob template labelled app.kubernetes.io/component={kind}")


def _default_name(base: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{base}-{stamp}-{secrets.token_hex(2)}"


def _check_name(name: str) -> None:
    if len(name) > _MAX_JOB_NAME or not _DNS1123_LABEL.match(name):
        raise BcistreamError(
            f"invalid Job name '{name}': use at most {_MAX_JOB_NAME} lower-case letters, digits and '-',"
            " starting and ending with a letter or digit"
        )


def _options(args: list[str]) -> list[list[str]]:
    """Split ``--opt [value]`` groups (a value is a token that does not start with ``--``)."""
    groups: list[list[str]] = []
    for token in args:
        if token.startswith("--") or not groups or len(groups[-1]) == 2 or "=" in groups[-1][0]:
            groups.append([token])
        else:
            groups[-1].append(token)
    return groups


def merge_args(template: list[str], user: list[str]) -> list[str]:
    """The template's options that the user did not give, then the user's (which win).

    ``merge_args(["--trials", "25", "--storage", "$(DB)"], ["--trials", "5"])`` gives
    ``["--storage", "$(DB)", "--trials", "5"]``. Options are matched by name (``--x`` and ``--x=v``);
    ``--flag`` and ``--no-flag`` count as the same option.
    """
    def key(group: list[str]) -> str:
        name = group[0].split("=", 1)[0]
        return "--" + name[len("--no-"):] if name.startswith("--no-") else name

    user_groups = _options(user)
    if user_groups and not user_groups[0][0].startswith("--"):
        raise BcistreamError(f"arguments must be --options, got '{user_groups[0][0]}' first")
    given = {key(g) for g in user_groups}
    kept = [tok for g in _options(template) if key(g) not in given for tok in g]
    return kept + user


def build_job(
    kind: str,
    args: list[str] | None = None,
    *,
    overlay: str = "gke",
    template: Path | None = None,
    namespace: str | None = None,
    image: str | None = None,
    name: str | None = None,
    parallelism: int | None = None,
    replace_args: bool = False,
) -> Any:
    """Build the ``V1Job`` for ``bcistream KIND ARGS`` from the overlay's template.

    Parameters
    ----------
    kind : {"train", "tune", "retrain"}
        The command the Job runs.
    args : list of str, optional
        Arguments after the command. They override the template's options of the same name; the
        template's other options stay (e.g. the tune Job's ``--storage $(OPTUNA_STORAGE)``, which
        makes its workers share one study). See `merge_args`.
    overlay, template
        Where the template comes from (see `load_templates`).
    namespace : str, optional
        Namespace of the Job; default: the template's.
    image : str, optional
        Image for every container; default: the template's pinned image.
    name : str, optional
        Job name; default: ``<template name>-<UTC time>-<4 hex>``.
    parallelism : int, optional
        For an Indexed Job (tune): number of workers, i.e. ``parallelism`` and ``completions``.
    replace_args : bool
        Use ``args`` alone, dropping the template's arguments.

    Returns
    -------
    kubernetes.client.V1Job
        Validated by the client's models; `job_to_dict` gives the manifest back.
    """
    body = template_for(kind, load_templates(overlay, template))
    meta, spec = body["metadata"], body["spec"]
    meta["name"] = name if name is not None else _default_name(meta["name"])
    _check_name(meta["name"])
    if namespace is not None:
        _check_name(namespace)
        meta["namespace"] = namespace
    pod = spec["template"]["spec"]
    if pod.get("restartPolicy") not in ("Never", "OnFailure"):
        raise BcistreamError(f"template for '{kind}' has restartPolicy {pod.get('restartPolicy')!r}; "
                             "a Job needs Never or OnFailure")
    main = pod["containers"][0]
    template_args = main.get("args") or []
    if not template_args or template_args[0] != kind:
        raise BcistreamError(f"template for '{kind}' does not run `bcistream {kind}` (args {template_args})")
    if args is not None:
        args = [str(a) for a in args]
        main["args"] = [kind, *(args if replace_args else merge_args(template_args[1:], args))]
    if image is not None:
        if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
            raise BcistreamError(f"image '{image}' has no tag: pin a version (repo/name:TAG)")
        if image.endswith(":latest"):
            raise BcistreamError(f"image '{image}': pin a version instead of 'latest'")
        for container in pod["containers"]:
            container["image"] = image
    if parallelism is not None:
        if spec.get("completionMode") != "Indexed":
            raise BcistreamError(f"--parallelism applies to Indexed Jobs (tune), not to '{kind}'")
        if parallelism < 1:
            raise BcistreamError(f"--parallelism: must be >= 1, got {parallelism}")
        spec["parallelism"] = spec["completions"] = parallelism
        if "maxFailedIndexes" in spec:
            spec["maxFailedIndexes"] = min(spec["maxFailedIndexes"], parallelism)
    return _to_model(body)


def _to_model(body: dict) -> Any:
    """``V1Job`` from a manifest dict; refuses fields the client would silently drop."""
    client = kubernetes_client()
    try:
        job = client.V1Job.from_dict(body)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise BcistreamError(f"Job template does not fit the Kubernetes Job schema: {exc}") from None
    back = job_to_dict(job)
    if back != body:
        raise BcistreamError(f"Job template has fields the Kubernetes client does not know: "
                             f"{_first_difference(body, back)}")
    return job


def _first_difference(want: Any, got: Any, path: str = "") -> str:
    if isinstance(want, dict) and isinstance(got, dict):
        for key in want:
            if key not in got:
                return f"{path}.{key}".lstrip(".")
            diff = _first_difference(want[key], got[key], f"{path}.{key}")
            if diff:
                return diff
        return ""
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            diff = _first_difference(w, g, f"{path}[{i}]")
            if diff:
                return diff
        return ""
    return "" if want == got else path.lstrip(".") or "<root>"


def job_to_dict(job: Any) -> dict:
    """The manifest (camelCase keys, no empty fields) of a ``V1Job``."""
    return kubernetes_client().ApiClient().sanitize_for_serialization(job)


def job_to_yaml(job: Any) -> str:
    """The Job as YAML, ready for ``kubectl create -f -``."""
    import yaml

    return yaml.safe_dump(job_to_dict(job), sort_keys=False)


