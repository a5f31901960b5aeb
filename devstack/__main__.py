"""``python -m devstack``: start every emulator and the Functions runner hosting function_app.py.

It writes a ``local.settings.json`` that points the dispatcher at the emulators, prints where each one
listens and the settings block, and stops everything on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import threading
from pathlib import Path

from devstack.identity import DEV_USERS
from devstack.stack import ROOT, Stack, StackOptions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".devstack", help="where emulators keep state")
    parser.add_argument("--port", type=int, default=7071, help="HTTP port of the Functions runner")
    parser.add_argument("--simulate", action="store_true", help="ACI simulation mode: containers do not execute")
    parser.add_argument("--no-runner", action="store_true", help="start the emulators only (e.g. for func start)")
    parser.add_argument("--fresh", action="store_true", help="delete the state folder first")
    parser.add_argument("--verbose", action="store_true", help="log at DEBUG level")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    for noisy in ("azure", "uamqp", "proton", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.fresh and args.state_dir.exists():
        shutil.rmtree(args.state_dir)
    args.state_dir.mkdir(parents=True, exist_ok=True)

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    options = StackOptions(
        state_dir=args.state_dir,
        http_port=args.port,
        aci_mode="simulate" if args.simulate else "run",
        runner=not args.no_runner,
        reconcile_schedule="*/5 * * * * *",
    )
    with Stack(options) as stack:
        print("devstack is up:", flush=True)
        print(f"  ACI (ARM)        {stack.aci.url}", flush=True)
        print(f"  Azure Files      {stack.files.url}", flush=True)
        print(f"  Key Vault        {stack.keyvault.url} (the dispatcher's)", flush=True)
        print(f"  Key Vault        {stack.job_vault.url} (job secrets)", flush=True)
        print(f"  Entra ID issuer  {stack.identity.authority}  (users: {', '.join(DEV_USERS)})", flush=True)
        print(f"  Service Bus      sb://127.0.0.1:{stack.servicebus.port}", flush=True)
        print(f"  Azurite blob     {stack.azurite.blob_url}", flush=True)
        print(f"  Azurite table    {stack.azurite.table_url}", flush=True)
        if stack.runner is not None:
            print(f"  Functions        {stack.runner.url}  (functions: {', '.join(sorted(stack.runner.functions))})")
            print(f"  function key     {stack.runner.function_key}  (also in {stack.runner.keys_file})")
            print(f"  dashboard        {stack.runner.url}/ui/  (sign in with the function key)")
        print(f"\nSettings (also written to {args.state_dir / 'local.settings.json'}):", flush=True)
        for name, value in stack.settings().items():
            print(f"  {name}={value}", flush=True)
        print("\nCtrl-C stops everything.", flush=True)
        reported: set[str] = set()
        while not stopping.wait(5):
            for problem in set(stack.problems()) - reported:
                logging.getLogger("devstack").error("devstack is unhealthy: %s", problem)
                reported.add(problem)
        print("Stopping: in-flight invocations finish first.", flush=True)


if __name__ == "__main__":
    main()
