"""The model holder: the registry champion, polled and swapped in while requests keep running.

A request takes one `LoadedModel` reference at its start and decodes with it to the end, so a
swap never changes the model under a running request. The previous version stays loaded after
a swap: a live engine still computing features with it gets its answer (or a clean 409 once
two newer versions have arrived), never features of one version classified by another.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ModelHolder", "ModelUri", "parse_model_uri"]

log = logging.getLogger(__name__)

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))?$")


@dataclass(frozen=True)
class ModelUri:
    """A parsed ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` URI."""

    name: str
    alias: str | None = None
    version: str | None = None

    def for_version(self, version: str) -> str:
        """The URI of one fixed version of the same registered model."""
        return f"models:/{self.name}/{version}"


def parse_model_uri(uri: str) -> ModelUri:
    """Parse a registry model URI; ``ValueError`` naming the accepted forms otherwise."""
    m = _URI.match(uri.strip())
    if not m:
        raise ValueError(f"model URI {uri!r} is not of the form models:/NAME@ALIAS or models:/NAME/VERSION")
    alias = m["alias"] if m["alias"] or m["version"] else "champion"
    return ModelUri(name=m["name"], alias=alias if not m["version"] else None, version=m["version"])


def _registry_load(uri: str, tracking_uri: str | None) -> Any:
    from bcistream.training.registry import load_model

    return load_model(uri, tracking_uri)


def _registry_alias(tracking_uri: str | None, name: str, alias: str) -> str | None:
    from bcistream.training.registry import alias_version

    version = alias_version(tracking_uri, name, alias)
    return None if version is None else str(version)


def _registry_aliases(tracking_uri: str | None, name: str, version: str) -> list[str]:
    from bcistream.training.registry import version_aliases

    return version_aliases(tracking_uri, name, version)


def _missing(tracking_uri: str | None, name: str, alias: str) -> str:
    """No such model, or no such alias (with the names / aliases that exist)."""
    if tracking_uri is None:
        return f"model '{name}' has no alias '{alias}' in the registry"
    from bcistream.training.registry import missing_model

    return missing_model(tracking_uri, name, alias=alias)


class ModelHolder:
    """Holds the current model (and the previous one) of a registry alias.

    Parameters
    ----------
    model_uri : str
        ``models:/NAME@ALIAS`` (followed) or ``models:/NAME/VERSION`` (fixed).
    tracking_uri : str or None
        MLflow tracking/registry URI.
    poll_interval : float
        Seconds between checks of the alias; ``<= 0`` disables polling.
    keep : int
        How many versions stay loaded (current + previous by default).
    load : callable, optional
        ``load(uri, tracking_uri) -> LoadedModel``; default `bcistream.training.registry.load_model`.
    resolve : callable, optional
        ``resolve(tracking_uri, name, alias) -> version or None``; default ``alias_version``.
    aliases : callable, optional
        ``aliases(tracking_uri, name, version) -> [alias, ...]``, every alias of a version; default
        ``version_aliases``. Read at every check, as aliases move without the version changing.
    """

    def __init__(
        self,
        model_uri: str,
        tracking_uri: str | None = None,
        *,
        poll_interval: float = 10.0,
        keep: int = 2,
        load: Callable[[str, str | None], Any] | None = None,
        resolve: Callable[[str | None, str, str], str | None] | None = None,
        aliases: Callable[[str | None, str, str], list[str]] | None = None,
    ) -> None:
        self.uri = parse_model_uri(model_uri)
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self.poll_interval = float(poll_interval)
        self.keep = max(1, int(keep))
        self._load = load or _registry_load
        self._resolve = resolve or _registry_alias
        self._read_aliases = aliases or _registry_aliases
        self._aliases: dict[str, list[str]] = {}  # version -> its aliases at the last check
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._current: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.registry_reachable: bool | None = None
        self.last_error: str | None = None
        self.last_check: float | None = None
        self.swaps = 0
        #: Called (no arguments) after each swap, e.g. to count it in a metric.
        self.on_swap: Callable[[], None] | None = None

    # -- reading -------------------------------------------------------------------------
    @property
    def current(self) -> Any:
        """The `LoadedModel` requests use now (``None`` before the first successful load)."""
        return self._current

    def get(self, version: str) -> Any:
        """The held `LoadedModel` of ``version``, or ``None``."""
        return self._models.get(str(version))

    def aliases_of(self, version: str) -> list[str]:
        """Every registry alias of ``version`` at the last check (``[]`` when none or not read)."""
        return list(self._aliases.get(str(version), []))

    @property
    def versions(self) -> list[str]:
        """Loaded versions, oldest first."""
        return list(self._models)

    def status(self) -> dict[str, Any]:
        """Readiness detail: the model in use, what is held, and the registry's state."""
        cur = self._current
        ago = None if self.last_check is None else round(time.monotonic() - self.last_check, 3)
        return {
            "ready": cur is not None,
            "model_uri": self.model_uri,
            "version": None if cur is None else str(cur.version),
            "held_versions": self.versions,
            "registry_reachable": self.registry_reachable,
            "last_error": self.last_error,
            "seconds_since_check": ago,
            "serving_last_good_model": cur is not None and self.registry_reachable is False,
            "swaps": self.swaps,
        }

    # -- updating ------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Check the registry once; load and swap in a changed version. Returns True on a swap.

        Never raises: a failure is recorded (``registry_reachable``, ``last_error``) and the
        last good model stays in use.
        """
        try:
            version = self._target_version()
            if version is None:
                self.registry_reachable = True
                self.last_error = _missing(self.tracking_uri, self.uri.name, self.uri.alias or "champion")
                return False
            # Read before a swap, so the served version never goes without its aliases; read at
            # every check, as an alias moves (a new challenger) without the served version changing.
            aliases = sorted(self._read_aliases(self.tracking_uri, self.uri.name, version))
            held = {v: a for v, a in self._aliases.items() if v in self._models}
            self._aliases = {**held, version: aliases}  # one assignment: readers never see it half-built
            swapped = False
            if self._current is None or str(self._current.version) != version:
                loaded = self.get(version) or self._load(self.uri.for_version(version), self.tracking_uri)
                self._install(loaded)
                swapped = True
            self.registry_reachable = True
            self.last_error = None
            return swapped
        except Exception as exc:  # noqa: BLE001  (any registry/network failure keeps the last model)
            text = str(exc).strip()
            error = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
            # Polled every second: a registry that stays down is logged when it fails (or fails
            # differently), not once a second; /readyz and last_error carry the current state.
            if self.registry_reachable or error != self.last_error:
                log.warning("model registry check failed, keeping version %s: %s",
                            None if self._current is None else self._current.version, error)
            self.registry_reachable = False
            self.last_error = error
            return False
        finally:
            self.last_check = time.monotonic()

    def _target_version(self) -> str | None:
        """The version to serve: the fixed one, or the alias's target now (``None``: no such alias)."""
        if self.uri.version is not None:
            return self.uri.version
        version = self._resolve(self.tracking_uri, self.uri.name, self.uri.alias or "champion")
        return None if version is None else str(version)

    def _install(self, loaded: Any) -> None:
        version = str(loaded.version)
        with self._lock:
            self._models.pop(version, None)
            self._models[version] = loaded
            while len(self._models) > self.keep:
                self._models.popitem(last=False)
            previous = self._current
            self._current = loaded  # one reference assignment: requests see old or new, never half
            if previous is not None:
                self.swaps += 1
        if previous is not None and self.on_swap is not None:
            self.on_swap()
        log.info("serving model %s version %s", self.uri.name, version)

    def start(self) -> None:
        """Load now (failures are recorded, not raised) and poll in a daemon thread."""
        self.refresh()
        if self.poll_interval > 0 and self.uri.version is None and self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="bcistream-model-poll", daemon=True)
            self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval if self._current is not None else
                                  min(self.poll_interval, 1.0)):
            self.refresh()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
