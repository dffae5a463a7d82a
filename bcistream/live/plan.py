"""How a `LiveConfig` maps onto processes: the source's kind and how many engine workers."""

from __future__ import annotations

import math

from bcistream.errors import BcistreamError
from bcistream.live.config import LiveConfig

__all__ = ["plan_workers", "split_named", "split_source"]


def split_named(spec: str, kinds: tuple[str, ...], what: str) -> tuple[str, str]:
    """`split_spec` whose errors name the option ``what`` (``source``, ``sinks``)."""
    from bcistream.streamer.endpoints import split_spec

    try:
        return split_spec(spec, kinds)
    except BcistreamError as exc:
        raise BcistreamError(f"{what}: {exc}") from None


def split_source(spec: str) -> tuple[str, str]:
    """``"lsl:a,b"`` → ``("lsl", "a,b")``; raises `BcistreamError` naming ``source``."""
    return split_named(spec, ("lsl", "kafka"), "source")


def plan_workers(config: LiveConfig) -> int:
    """How many engine processes ``config`` asks for (`LiveConfig.workers`; see there).

    Raises
    ------
    BcistreamError
        ``workers > 1`` with ``record``, ``poll_interval`` or a remote ``classifier``.
    OpenFilesError
        ``workers`` puts more LSL streams in one process than its open-files limit holds. With
        ``workers`` unset, enough workers are planned for every process's inlets to fit.
    """
    kind, value = split_source(config.source)
    n_streams = len([v for v in value.split(",") if v]) if kind == "lsl" else None
    single = config.record or config.poll_interval is not None or config.classifier != "local"
    if config.workers is None:
        if single or n_streams is None:
            return 1
        from bcistream.workers import default_workers

        # Enough processes for their inlets (EEG + cue streams) to fit the open-files limit.
        return min(max(default_workers(), _workers_for_files(2 * n_streams)), n_streams)
    if config.workers > 1 and single:
        raise BcistreamError("workers > 1 cannot be combined with record, poll_interval or a remote "
                             "classifier (they need one engine process); use workers=1")
    if n_streams is None:
        return config.workers
    n = min(config.workers, n_streams)
    from bcistream.streamer.lsl_limits import FILES_PER_INLET, OpenFilesError, max_inlets

    per = max_inlets()
    if math.ceil(n_streams / n) > per:
        need = _workers_for_files(n_streams, per)
        fix = (f"use at least {need} workers (workers={need}; CLI --workers {need}) or raise the "
               f"hard limit" if per else "not one inlet fits: raise the hard limit")
        raise OpenFilesError(f"workers={n} puts up to {math.ceil(n_streams / n)} LSL streams in one "
                             f"process but one process may hold {per:.0f} inlets here (`ulimit -Hn`, "
                             f"{FILES_PER_INLET} open files per liblsl inlet); {fix}")
    return n


def _workers_for_files(n_inlets: int, per: float | None = None) -> int:
    """Processes for ``n_inlets`` to fit the open-files limit, ``per`` inlets each (default:
    `max_inlets`); 1 when none fits: the source then refuses with the reason."""
    if per is None:
        from bcistream.streamer.lsl_limits import max_inlets

        per = max_inlets()
    return 1 if math.isinf(per) or per <= 0 else math.ceil(n_inlets / per)
