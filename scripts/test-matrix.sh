#!/usr/bin/env bash
# `make test`: runs pytest once per entry of the host matrix, in the tools' venv
# (scripts/run-in-venv.sh sets it up). Arguments go to every pytest run.
#   RH_HOSTS="0.3.75 0.33.0 0.33.0+fe1.58.1"   (default) entries: a ComfyUI version, and
#                                              optionally +fe<version>: another front end
#   RH_HOSTS=0.33.0 make test                  one host: the whole suite on it
# The first entry runs every test; the next ones only what a host changes: the end-to-end
# and browser tests on another ComfyUI, the browser tests on another front end. An entry
# for which the arguments select nothing (pytest exit 5) is fine after the first; every
# entry runs even when one fails, and the run fails if any did.
set -uo pipefail
hosts="${RH_HOSTS:-0.3.75 0.33.0 0.33.0+fe1.58.1}"
first=1
failed=()
summary=()
for entry in $hosts; do
  host="${entry%%+*}"
  front_end=""
  [[ "$entry" == *+fe* ]] && front_end="${entry#*+fe}"
  if [ "$first" = 1 ]; then
    marker=()
  elif [ -n "$front_end" ]; then
    marker=(-m browser)
  else
    marker=(-m "e2e or browser")
  fi
  echo "[matrix] $entry: pytest ${marker[*]} $*"
  start=$(date +%s)
  RH_COMFY_HOST="$host" RH_FRONTEND="$front_end" python -m pytest "${marker[@]}" "$@"
  status=$?
  summary+=("$entry: exit $status in $(( $(date +%s) - start ))s")
  if [ "$status" != 0 ] && { [ "$status" != 5 ] || [ "$first" = 1 ]; }; then
    failed+=("$entry")
  fi
  first=0
done
printf '[matrix] %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "[matrix] failed: ${failed[*]}"
  exit 1
fi
