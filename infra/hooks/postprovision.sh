#!/bin/sh
# azd postprovision: the CLI, configured for the environment just provisioned (azd gives a hook its environment's
# values, the outputs of infra/main.bicep, as environment variables). The app's function key may not exist until
# its code first runs: then the configuration is written without it, and postdeploy writes it again with it.
set -u
. ./infra/hooks/ensure-cli.sh
"$cli" configure || {
  echo "the function key is not readable yet; writing the configuration without it (postdeploy adds it)" >&2
  "$cli" configure --no-key || exit $?
}
echo "The CLI is $cli: add $(dirname "$cli") to PATH, or install it anywhere with pip install \".[cli]\"."
