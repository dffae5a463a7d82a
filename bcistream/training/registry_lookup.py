"""What the registry holds: alias targets, versions, model names, and why a model URI finds nothing.

Read-only: nothing here writes to the registry. The "why" answers (`missing_model`) feed the
one-line errors of loading, ``serve`` and the service's model holder.
"""

from __future__ import annotations

import time
from typing import Any

from bcistream.training.registry_client import client
from bcistream.training.registry_errors import ModelError, is_not_found, read_failure

__all__ = ["alias_version", "missing_model", "model_versions", "registered_names", "version_aliases"]


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


def version_aliases(tracking_uri: str, name: str, version: str) -> list[str]:
    """Every alias that points at ``version`` of ``name`` now, sorted (``[]``: none, or no such version).

    One query. Complete, unlike a loaded model's ``alias`` (the one it was loaded through, or the
    first of several): ``/model`` reports these, and a version often carries both ``champion`` and
    ``challenger`` after a promotion.
    """
    from mlflow.exceptions import MlflowException

    try:
        mv = client(tracking_uri).get_model_version(name, str(version))
    except MlflowException as exc:
        if is_not_found(exc):
            return []
        raise ModelError(f"{tracking_uri}: cannot read the aliases of '{name}' version {version}: "
                         f"{read_failure(exc)}") from None
    return sorted(str(a) for a in (mv.aliases or []))


def model_versions(tracking_uri: str, name: str) -> list[dict[str, Any]]:
    """Every version of ``name``, newest first: version, aliases, creation time, run id and tags."""
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
