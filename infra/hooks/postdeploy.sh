#!/bin/sh
# azd postdeploy: the CLI's configuration, now with the function key, and a check that the app just deployed answers
# and reaches its store, Service Bus and ARM. A new Functions app takes a while to start: `dispatcher health` is
# retried for DISPATCHER_HEALTH_WAIT seconds (300 by default) while it fails with exit 3 (degraded or unreachable);
# any other failure ends the hook at once.
set -u
. ./infra/hooks/ensure-cli.sh
"$cli" configure || exit $?
wait="${DISPATCHER_HEALTH_WAIT:-300}"
pause="${DISPATCHER_HEALTH_PAUSE:-10}"
deadline=$(( $(date +%s) + wait ))
while :; do
  "$cli" health
  code=$?
  if [ "$code" -eq 0 ]; then
    echo "The deployment answers. Try: $cli submit examples/hello.yaml --wait"
    exit 0
  fi
  [ "$code" -eq 3 ] || exit "$code"
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "dispatcher health still fails after ${wait}s: see docs/deploy.md, Verify" >&2
    exit 1
  fi
  echo "not healthy yet; trying again in ${pause}s" >&2
  sleep "$pause"
done
