#!/bin/sh
# Jupyter Notebook 6 behind Tessera's proxy. It serves under INGRESS_PATH itself
# (base_url), on 127.0.0.1 only: the platform's port is the way in. Notebooks are kept
# in the project's result bucket (RESULTS_DIR).
set -e
command -v jupyter-notebook >/dev/null || { echo "jupyter-notebook is not installed: apt-get install jupyter-notebook" >&2; exit 127; }
dir="${RESULTS_DIR:-$HOME}/notebooks"
mkdir -p "$dir"
export JUPYTER_RUNTIME_DIR="${TMPDIR:-/tmp}/tessera-jupyter-$TESSERA_APP_ID"
# No Jupyter token or password: the platform's proxy admits the project's members, and
# Jupyter answers only requests that carry the proxy's secret (jupyter_tessera_config.py),
# so no other process of this machine can use it through its port on 127.0.0.1.
# Cross-origin requests stay refused and XSRF checks stay on, so that a web page open in
# the same browser cannot drive it. allow_remote_access: requests come through the proxy
# with the platform's host name, whatever it is.
root=""
[ "$(id -u)" = 0 ] && root=--allow-root # containers and CI run as root
here="$(cd "$(dirname "$0")" && pwd)"
exec jupyter-notebook $root --no-browser --ip=127.0.0.1 --port="$PORT" --port-retries=0 \
  --config="$here/jupyter_tessera_config.py" \
  --NotebookApp.base_url="$INGRESS_PATH/" --NotebookApp.token='' --NotebookApp.password='' \
  --NotebookApp.allow_remote_access=True \
  --notebook-dir="$dir"
