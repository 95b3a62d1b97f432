#!/usr/bin/env bash
# Sets up everything on a fresh Debian or Raspberry Pi OS machine: system packages, the virtualenv,
# the app, and the verified models. Safe to run again: it only does what is missing.
#   ./setup.sh           the assistant
#   ./setup.sh --test    also what the tests need
set -euo pipefail
cd "$(dirname "$0")"
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

apt_pkgs=(mosquitto libportaudio2 espeak-ng sox python3-venv)
# the appliance tests: systemd-analyze, and the SD card image built without mounting anything
[ $want_test -eq 1 ] && apt_pkgs+=(systemd mtools dosfstools fdisk e2fsprogs)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements-wakeword.txt -nt "$stamp" ]; then
  echo "installing the app into .venv"
  "${pip[@]}" --upgrade pip
  if [ $want_test -eq 1 ]; then "${pip[@]}" -e '.[llm,test]'; else "${pip[@]}" -e '.[llm]'; fi
  # openwakeword without its tflite dependency: we use its ONNX path, and tflite has no newer wheels.
  "${pip[@]}" --no-deps -r requirements-wakeword.txt
  touch "$stamp"
fi
if [ $want_test -eq 1 ] && ! .venv/bin/python -c "import pytest, uvicorn" 2>/dev/null; then
  "${pip[@]}" -e '.[llm,test]'
fi

.venv/bin/assistant models fetch
