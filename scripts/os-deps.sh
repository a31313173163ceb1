#!/usr/bin/env bash
# Installs what the tests need from the operating system (Debian/Ubuntu packages) when it
# can: as root with apt-get. Otherwise it names the one command to run and exits 1.
# Called by scripts/bootstrap.sh (so by `make setup` and `make test`); quick when all is there.
set -euo pipefail

missing=()
need_command() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need_command flock util-linux
need_command sha256sum coreutils
need_command git git
# Python 3.11 (or python3) with venv and pip: the venvs are built from it.
python_bin="$(command -v "${PYTHON:-python3.11}" || command -v python3 || true)"
if [ -z "$python_bin" ] || ! "$python_bin" -c 'import venv, ensurepip' >/dev/null 2>&1 \
   || ! "$python_bin" -m pip --version >/dev/null 2>&1; then
  missing+=(python3 python3-venv python3-pip)
fi
# The browser tests drive Debian's chromium (never a downloaded browser); a CJK font makes
# the zh screenshots legible.
# (with their recommended packages: chromium's fonts and codecs).
browser=()
[ -x "${RH_CHROMIUM:-/usr/bin/chromium}" ] || browser+=(chromium)
dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || browser+=(fonts-wqy-microhei)

[ "${#missing[@]}" -eq 0 ] && [ "${#browser[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[os-deps] installing: ${missing[*]} ${browser[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  [ "${#missing[@]}" -eq 0 ] || apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  [ "${#browser[@]}" -eq 0 ] || apt-get install -y -q "${browser[@]}" >&2
  exit 0
fi
echo "[os-deps] missing system packages; run this once, then try again:" >&2
echo "    sudo apt-get install -y $(echo "${missing[@]}" "${browser[@]}")" >&2
exit 1
