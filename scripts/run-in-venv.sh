#!/usr/bin/env bash
# Runs a command with the project's environment: bootstraps (cached) first, then exports
# RH_VENV / RH_COMFYUI_DIR (so the test host skips its own bootstrap call) and puts the
# venv first on PATH.   scripts/run-in-venv.sh python -m pytest -m "not e2e"
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(bash "$here/scripts/bootstrap.sh")"
venv="$(printf '%s\n' "$out" | sed -n 's/^VENV=//p' | tail -n 1)"
comfy="$(printf '%s\n' "$out" | sed -n 's/^COMFYUI_DIR=//p' | tail -n 1)"
if [ -z "$venv" ] || [ -z "$comfy" ]; then
  echo "run-in-venv: bootstrap did not print VENV= and COMFYUI_DIR=" >&2
  exit 2
fi
export RH_VENV="$venv" RH_COMFYUI_DIR="$comfy" VIRTUAL_ENV="$venv"
export PATH="$venv/bin:$PATH"
cd "$here"
exec "$@"
