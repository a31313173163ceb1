#!/usr/bin/env bash
# Runs a command with the project's environment: bootstraps (cached) first, then exports
# every KEY=VALUE line the bootstrap prints as RH_<KEY> (RH_VENV, RH_COMFYUI_DIR,
# RH_HOST_0_33_0_VENV, ...; the test host then skips its own bootstrap call) and puts the
# tools' venv first on PATH.   scripts/run-in-venv.sh python -m pytest -m "not e2e"
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(bash "$here/scripts/bootstrap.sh")"
while IFS='=' read -r key value; do
  if [[ "$key" =~ ^[A-Z0-9_]+$ ]]; then export "RH_$key=$value"; fi
done <<< "$out"
if [ -z "${RH_VENV:-}" ] || [ -z "${RH_COMFYUI_DIR:-}" ]; then
  echo "run-in-venv: bootstrap did not print VENV= and COMFYUI_DIR=" >&2
  exit 2
fi
export VIRTUAL_ENV="$RH_VENV"
export PATH="$RH_VENV/bin:$PATH"
cd "$here"
exec "$@"
