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
# the tests' own sound server, reached through ALSA's pulse plugin as a box's devices are
# (tests/sound_server.py); without their recommends, a desktop's worth of graphics drivers
lean_pkgs=()
[ $want_test -eq 1 ] && lean_pkgs+=(pulseaudio pulseaudio-utils libasound2-plugins)
not_installed() {
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
mapfile -t missing < <(not_installed "${apt_pkgs[@]}")
mapfile -t missing_lean < <(not_installed "${lean_pkgs[@]}")
to_install=("${missing[@]}" "${missing_lean[@]}")
if [ ${#to_install[@]} -gt 0 ]; then
  echo "installing system packages: ${to_install[*]}"
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  [ ${#missing[@]} -eq 0 ] || \
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
  [ ${#missing_lean[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq \
    --no-install-recommends "${missing_lean[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)

# llama.cpp is compiled from source (PyPI has no wheel), for this machine's CPU. The wheel is kept in a
# folder named after the version and the flags, so a later set-up (or CI on this machine) takes seconds.
# On x86-64 AMX is left out: where the CPU lists it but the hypervisor does not grant its register state
# (seen on cloud VMs), llama.cpp's AMX kernels end the process on their first matrix product.
llama=$(sed -n 's/.*"\(llama-cpp-python\)==\([0-9.]*\)".*/\1==\2/p' pyproject.toml | head -1)
llama_flags=""
[ "$(uname -m)" = x86_64 ] && llama_flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
wheels=${XDG_CACHE_HOME:-$HOME/.cache}/assistant/wheels/${llama}-$(echo "$llama_flags" | md5sum | cut -c1-8)
if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "compiling $llama for this CPU: about 5 minutes on a fast machine, 15 on two slow cores or a Pi 5;"
  echo "  done once, the wheel is kept in $wheels"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  CFLAGS="$llama_flags" CXXFLAGS="$llama_flags" .venv/bin/python -m pip wheel -q --no-deps --no-cache-dir \
    --disable-pip-version-check -w "$wheels" "$llama"
fi
pip+=(--find-links "$wheels")
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements-wakeword.txt -nt "$stamp" ] \
   || [ "$(cat .venv/.llama-wheels 2>/dev/null)" != "$wheels" ]; then
  echo "installing the app into .venv"
  "${pip[@]}" --upgrade pip
  if [ $want_test -eq 1 ]; then "${pip[@]}" -e '.[llm,test]'; else "${pip[@]}" -e '.[llm]'; fi
  # openwakeword without its tflite dependency: we use its ONNX path, and tflite has no newer wheels.
  "${pip[@]}" --no-deps -r requirements-wakeword.txt
  # a llama.cpp from another folder of wheels (other flags) is replaced by this one
  "${pip[@]}" --no-deps --force-reinstall --no-index "$llama"
  echo "$wheels" > .venv/.llama-wheels
  touch "$stamp"
fi
if [ $want_test -eq 1 ] && ! .venv/bin/python -c "import pytest, uvicorn, xdist" 2>/dev/null; then
  "${pip[@]}" -e '.[llm,test]'
fi

.venv/bin/assistant models fetch
