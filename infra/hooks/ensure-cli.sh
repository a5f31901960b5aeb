# Sourced by the azd hooks: sets $cli to a dispatcher CLI, installed on its own into .azure/cli (pip install
# ".[cli]": none of the app's server packages) unless DISPATCHER_CLI names one already.
cli="${DISPATCHER_CLI:-}"
if [ -z "$cli" ]; then
  [ -x .azure/cli/bin/python ] || python3 -m venv .azure/cli
  .azure/cli/bin/python -m pip install --quiet --upgrade ".[cli]"
  cli=.azure/cli/bin/dispatcher
fi
