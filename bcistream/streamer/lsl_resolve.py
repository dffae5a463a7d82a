"""Finding LSL streams: one short query per stream (a single loopback resolve misses outlets)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bcistream.errors import BcistreamError

__all__ = ["StreamNotFoundError", "describe", "find_streams", "parse_spec", "resolve_many", "resolve_one"]


class StreamNotFoundError(BcistreamError):
    """No LSL stream matched; the message lists what was found instead."""


def parse_spec(spec: str) -> tuple[str, str]:
    """``"NAME"`` -> ("name", NAME); ``"source_id=X"`` / ``"type=EEG"`` / ``"name=N"`` -> (prop, value)."""
    prop, sep, value = spec.partition("=")
    if sep and prop in ("name", "type", "source_id"):
        if not value:
            raise BcistreamError(f"empty value in LSL stream selector {spec!r}")
        return prop, value
    return "name", spec


def describe(info: Any) -> str:
    """``name (type, 22 ch @ 250 Hz, source_id=..)``."""
    return (f"{info.name()} ({info.type()}, {info.channel_count()} ch @ {info.nominal_srate():g} Hz, "
            f"source_id={info.source_id() or '-'})")


def _found_list(wait: float = 1.0) -> str:
    import pylsl

    infos = pylsl.resolve_streams(wait_time=wait)
    if not infos:
        return "no LSL streams at all were found (is the outlet running, and on this network?)"
    listed = "; ".join(describe(i) for i in infos[:20])
    more = f" and {len(infos) - 20} more" if len(infos) > 20 else ""
    return f"found {len(infos)} other stream(s): {listed}{more}"


def resolve_one(spec: str, timeout: float = 5.0, *, list_found: bool = True) -> Any:
    """Resolve one stream by ``name``, ``type=`` or ``source_id=`` selector.

    Raises
    ------
    StreamNotFoundError
        Nothing matched within ``timeout``; the message lists the streams that were visible.
    """
    import pylsl

    prop, value = parse_spec(spec)
    infos = pylsl.resolve_byprop(prop, value, minimum=1, timeout=timeout)
    if not infos:
        extra = _found_list() if list_found else ""
        raise StreamNotFoundError(f"no LSL stream with {prop}={value!r} found within {timeout:g} s; "
                                  f"{extra}")
    return infos[0]


def find_streams(specs: Sequence[str], timeout: float = 5.0, bulk_wait: float = 2.0,
                 batch: int = 100) -> dict[int, Any]:
    """Index -> stream info of the ``specs`` found: batched queries, then one query per missing spec.

    A batched query is fast (1000 outlets in ~0.6 s) but can miss outlets (with the default
    ``PortRange`` of lsl_api.cfg a loopback query reaches only ~32 of them); the per-stream queries
    that follow find the rest.
    """
    import pylsl

    parsed = [parse_spec(s) for s in specs]
    found: dict[int, Any] = {}
    if len(specs) > 1:
        # Batches of one XPath query each: only the matching outlets answer (a query that every
        # one of thousands of outlets answers loses replies). Repeated while they find more.
        for _ in range(3):
            before = len(found)
            todo = [i for i in range(len(specs)) if i not in found]
            for b in range(0, len(todo), batch):
                part = todo[b:b + batch]
                pred = " or ".join(f"{parsed[i][0]}='{parsed[i][1]}'" for i in part
                                   if "'" not in parsed[i][1])
                if not pred:
                    continue
                index = {}
                for info in pylsl.resolve_bypred(pred, len(part), min(bulk_wait, timeout)):
                    for key in (("name", info.name()), ("type", info.type()),
                                ("source_id", info.source_id())):
                        index.setdefault(key, info)
                for i in part:
                    if parsed[i] in index:
                        found[i] = index[parsed[i]]
            if len(found) == len(specs) or len(found) == before:
                break
    for i, spec in enumerate(specs):
        if i not in found:
            try:
                found[i] = resolve_one(spec, timeout, list_found=False)
            except StreamNotFoundError:
                pass
    return found


def resolve_many(specs: Sequence[str], timeout: float = 5.0) -> list[Any]:
    """Resolve every spec (see `find_streams`); fail with the list of the streams still missing."""
    found = find_streams(specs, timeout)
    missing = [spec for i, spec in enumerate(specs) if i not in found]
    if missing:
        raise StreamNotFoundError(
            f"{len(missing)} of {len(specs)} LSL stream(s) not found within {timeout:g} s: "
            f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}; {_found_list()}")
    return [found[i] for i in range(len(specs))]
