"""``bcistream broker``: the bundled Kafka-protocol broker in the foreground, to try the Kafka path."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

from bcistream.cli.app import app
from bcistream.cli.common import console, port_in_use, settings
from bcistream.errors import BcistreamError


@app.command()
def broker(
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1.")] = 9092,
    storage: Annotated[str, typer.Option(
        help="tansu storage URL; memory:// keeps nothing when it stops.")] = "memory://tansu/",
) -> None:
    """Run the bundled Kafka-protocol broker (tansu) on 127.0.0.1 until Ctrl-C.

    For trying `replay --to kafka` and `run --from kafka:` on one machine (a lab runs its own Kafka).
    """
    from bcistream.cli.stream_cmds import _stop_on_signals
    from bcistream.streamer.local_broker import LocalBroker

    if port_in_use("127.0.0.1", port):
        raise BcistreamError(f"--port {port}: 127.0.0.1:{port} is already in use (another broker?); "
                             "choose another with --port")
    logs = settings().home / "broker"
    logs.mkdir(parents=True, exist_ok=True)
    local = LocalBroker(storage=storage, port=port, log_dir=logs)
    stop = threading.Event()
    with _stop_on_signals(stop):
        local.start()
        log = Path(local.log_path)
        try:
            console.print(f"Kafka-protocol broker (bundled tansu) at {local.bootstrap}, storage {storage}; "
                          f"log {log}; Ctrl-C stops it", soft_wrap=True, markup=False, highlight=False)
            console.print(f"next: bcistream replay FILE --to kafka --bootstrap {local.bootstrap} --loop",
                          soft_wrap=True, markup=False, highlight=False)
            while not stop.wait(0.5):
                if local.proc is None or local.proc.poll() is not None:
                    tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
                    raise BcistreamError(f"the broker exited on its own ({tail or 'no output'}); "
                                         f"log: {log}")
        finally:
            local.stop()
    console.print("broker stopped", markup=False, highlight=False)
