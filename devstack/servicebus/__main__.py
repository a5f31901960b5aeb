"""Run the Service Bus emulator from the command line: ``python -m devstack.servicebus --config Config.json``."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from pathlib import Path

from devstack.servicebus.config import default_config
from devstack.servicebus.emulator import ServiceBusEmulator


def main(argv: list[str] | None = None) -> None:
    """Start the emulator, print its connection string, and serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, help="a Config.json file (default: one queue named 'jobs')")
    parser.add_argument("--port", type=int, default=5672, help="loopback port to listen on (0 picks a free one)")
    args = parser.parse_args(argv)
    config = args.config if args.config else default_config(["jobs"])
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with ServiceBusEmulator(config, port=args.port) as emulator:
        print(emulator.connection_string, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()


if __name__ == "__main__":
    main()
