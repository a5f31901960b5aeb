"""Command line: ``python -m devstack.host [APP_DIR]`` runs a function app locally until Ctrl+C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from devstack.host.keys import KeysFileError
from devstack.host.loader import FunctionAppError
from devstack.host.runner import FunctionsRunner
from devstack.host.settings import SettingsError


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, start the runner, print its URLs and keys file, and stop gracefully on a signal."""
    parser = argparse.ArgumentParser(prog="python -m devstack.host", description=__doc__)
    parser.add_argument("app_dir", nargs="?", default=".", type=Path, help="folder with function_app.py")
    parser.add_argument("--port", type=int, default=None, help="HTTP port (default: LocalHttpPort or 7071)")
    parser.add_argument("--keys-file", type=Path, default=None, help="JSON keys file (created if missing)")
    parser.add_argument(
        "--servicebus-connection", default=None, help="emulator connection string for identity-based connections"
    )
    parser.add_argument("--settings-file", type=Path, default=None, help="local.settings.json to read")
    parser.add_argument("--verbose", action="store_true", help="log at DEBUG level")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    logging.getLogger("azure").setLevel(logging.WARNING)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    runner = FunctionsRunner(
        args.app_dir,
        http_port=args.port,
        keys_file=args.keys_file,
        servicebus_connection=args.servicebus_connection,
        local_settings_file=args.settings_file,
    )
    try:
        runner.start()
    except (SettingsError, FunctionAppError, KeysFileError) as error:
        raise SystemExit(f"cannot start: {error}") from error
    try:
        print(f"Functions: {', '.join(sorted(runner.functions))}", flush=True)
        print(f"HTTP functions under {runner.url}; keys in {runner.keys_file}", flush=True)
        stopping.wait()
        print("Stopping: letting in-flight invocations finish", flush=True)
    finally:
        runner.stop()


if __name__ == "__main__":
    main()
