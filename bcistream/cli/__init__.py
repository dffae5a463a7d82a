"""The ``bcistream`` command: sub-commands, logging set-up and one-line errors.

Every error a user can cause (bad file, bad profile, bad parameter) is a `BcistreamError` or a
``ValueError`` and is printed as one line with exit code 2; anything else is an internal error,
printed as one line too unless ``BCISTREAM_DEBUG=1`` asks for the traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import os
import sys
from collections.abc import Iterator

import click
import typer

from bcistream.cli import log_filters
from bcistream.cli.app import app, tidy_help
from bcistream.cli.usage import usage_line
from bcistream.errors import BcistreamError

__all__ = ["app", "main"]

# Command modules register on `app` when imported; this order is the order of `bcistream --help`.
_COMMAND_MODULES = ("data_cmds", "demo_cmds", "stream_cmds", "train_cmds", "retrain_cmds", "serve_cmds",
                    "broker_cmds", "k8s_cmds")
for _module in _COMMAND_MODULES:
    importlib.import_module(f"bcistream.cli.{_module}")
tidy_help()  # plain-text help for every command just registered


def _setup_logging() -> None:
    from bcistream.settings import Settings

    level = Settings().log_level.upper()
    fresh = not logging.getLogger().handlers  # else the host (a test, an app) owns the handlers
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if fresh:
        # kafka-python repeats its reconnect errors several times a second while a broker is away.
        log_filters.install(level)
    # urllib3 logs every retry of an unreachable HTTP registry as a long WARNING line; the command
    # says it once, in its error.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    # MLflow logs a failing SQL statement in full at ERROR before raising it; the CLI reports the
    # error itself in one line (a locked registry is retried first: training.registry_client.client).
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    # MNE prints progress at INFO; keep it quiet unless the user asks for more.
    os.environ.setdefault("MNE_LOGGING_LEVEL", "WARNING" if level != "DEBUG" else "INFO")


@contextlib.contextmanager
def _bounded_registry_retries() -> Iterator[None]:
    """While a command runs: MLflow's HTTP retries fit in ``BCISTREAM_REGISTRY_WAIT_S``.

    An HTTP registry that is down makes MLflow retry 7 times with backoff factor 2 (~4 minutes of
    silence). Bounded like a busy sqlite file: sleeps of 2, 4, 8 … s that fit in the wait, each
    request at most the wait (>= 5 s), then the command's one-line error. The child processes a
    command starts inherit it; a user's own MLflow variables win; restored afterwards (``main``
    also runs in-process, e.g. in tests).
    """
    from bcistream.settings import Settings

    wait = Settings().registry_wait_s
    bounds = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(int(math.log2(wait / 2 + 1))),
              "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(5, int(wait)))}
    added = [key for key in bounds if key not in os.environ]
    os.environ.update({key: bounds[key] for key in added})
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


@contextlib.contextmanager
def _noting_interrupts() -> Iterator[list[int]]:
    """While a command runs: Ctrl-C raises KeyboardInterrupt as usual and is noted in the list.

    Only in the main thread, and only when Python's own handler is in place (a host that set its
    own keeps it).
    """
    import signal
    import threading

    noted: list[int] = []
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield noted
        return

    def handler(signum: int, frame: object) -> None:
        noted.append(signum)
        signal.default_int_handler(signum, frame)

    signal.signal(signal.SIGINT, handler)
    try:
        yield noted
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (also used by the console script)."""
    _setup_logging()
    debug = os.environ.get("BCISTREAM_DEBUG") == "1"
    err = sys.stderr
    try:
        with _bounded_registry_retries(), _noting_interrupts() as interrupted:
            result = app(args=argv, standalone_mode=False)
        if interrupted and result == 130:
            # typer turns a Ctrl-C into a silent exit code 130; say what happened.
            err.write("interrupted\n")
            return 130
    except (typer.Abort, click.exceptions.Abort):
        err.write("aborted\n")
        return 130
    except (typer.Exit, click.exceptions.Exit) as exc:
        return int(exc.exit_code)
    except (typer.TyperException, click.ClickException) as exc:
        # typer >= 0.29 raises from its own vendored click; both have show().
        if type(exc).__name__ == "NoArgsIsHelpError":  # `bcistream` alone: the help is the answer
            exc.show()
            return 2
        if isinstance(exc, click.UsageError) or hasattr(exc, "ctx") and getattr(exc, "exit_code", 0) == 2:
            err.write(f"error: {usage_line(exc)}\n")
            return 2
        err.write(f"error: {_all_lines(exc)}\n")
        return 2
    except (BcistreamError, ValueError, OSError) as exc:
        if debug:
            raise
        err.write(f"error: {_all_lines(exc)}\n")
        return 2
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return 130
    except Exception as exc:  # noqa: BLE001  (last line of defence: no traceback for users)
        if _registry_busy(exc):
            if debug:
                raise
            err.write(f"error: the registry is locked or busy ({_one_line(exc)[:200]}); another process is "
                      "writing to it — try again when it is done\n")
            return 2
        unreachable = _kafka_unreachable(exc)
        if unreachable is not None:
            if debug:
                raise
            err.write(f"error: {unreachable}\n")
            return 2
        if debug:
            raise
        err.write(f"internal error ({type(exc).__name__}): {_one_line(exc)} — set BCISTREAM_DEBUG=1 for "
                  "details\n")
        return 1
    return int(result or 0)


def _all_lines(exc: BaseException) -> str:
    """Every line of a user error's message on one line (a config reports one line per field)."""
    text = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    return "; ".join(line.strip() for line in text.strip().splitlines() if line.strip()) or type(exc).__name__


def _one_line(exc: BaseException) -> str:
    """The first line of an error's message (database drivers append SQL and links)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _registry_busy(exc: BaseException) -> bool:
    """A locked sqlite registry or a busy database, from any MLflow/SQLAlchemy call."""
    text = str(exc).lower()
    return "database is locked" in text or (type(exc).__name__ == "OperationalError" and "busy" in text)


def _kafka_unreachable(exc: BaseException) -> str | None:
    """The one line for a Kafka client that found no broker (kafka-python 3 gives up after its
    ``bootstrap_timeout_ms``, 30 s; 2.x raised ``NoBrokersAvailable``), or None for any other error."""
    name, text = type(exc).__name__, str(exc)
    if name == "NoBrokersAvailable" or (name == "KafkaTimeoutError" and "bootstrap" in text.lower()):
        where = text.rsplit(" from ", 1)[-1] if " from " in text else "the bootstrap servers"
        return (f"cannot reach a Kafka broker at {where}: is it running? (--bootstrap or "
                "BCISTREAM_KAFKA_BOOTSTRAP; waited kafka-python's bootstrap_timeout_ms, 30 s unless "
                "--kafka-opt bootstrap_timeout_ms=MS says otherwise)")
    return None


def console_main() -> None:
    """Entry point of the console script (and of ``python -m bcistream``)."""
    exit_process(main())


def exit_process(code: int) -> None:
    """End the process with ``code``, skipping interpreter teardown once liblsl is loaded.

    liblsl can crash (SIGSEGV) while it destroys outlets whose consumers are still connected
    (sccn/liblsl#218, #220: its sample factory is freed under the sending threads). A process that
    is ending anyway gains nothing from that teardown, so once ``pylsl`` is loaded the process
    flushes its output and leaves with ``os._exit``; the OS closes the sockets.
    """
    if "pylsl" not in sys.modules:
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code)
