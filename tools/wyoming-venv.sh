#!/usr/bin/env bash
# The virtualenv that `assistant bench --beside-home-assistant` runs Home Assistant's voice servers from:
# wyoming-faster-whisper and wyoming-piper, at the versions the comparison was made with, kept apart from
# the assistant's own virtualenv (their dependencies pin other versions). Safe to run again.
#   tools/wyoming-venv.sh [VENV]    (default: .venv-wyoming in the source tree)
# Takes about 15 s with the wheels in pip's cache; a few minutes on a slow line (about 150 MB of wheels:
# ctranslate2, onnxruntime, av, piper-tts). The servers use the assistant's own model files when the bench
# starts them, so nothing else is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv-wyoming}"
pins=(wyoming-faster-whisper==3.8.1 wyoming-piper==2.5.2)
start=$(date +%s)
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q "${pins[@]}"
echo "wyoming-venv: ${pins[*]} in $venv ($(( $(date +%s) - start )) s)"
