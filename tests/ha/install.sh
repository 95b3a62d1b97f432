#!/usr/bin/env bash
# Installs Home Assistant Core into .venv-ha for `make test-ha`, a virtualenv of its own: its integrations
# pin older hassil, home-assistant-intents, paho-mqtt and wyoming than the app's .venv has.
#   1. homeassistant==2024.3.3 from PyPI (with josepy<2: acme, which Home Assistant's cloud support pulls
#      in, does not work with josepy 2), about 1.5 minutes on two cores with a warm pip cache;
#   2. the exact versions the manifest.json files of the integrations the test loads name
#      (tests/ha/ha_requirements.py: wyoming 1.5.3, paho-mqtt 1.6.1, hassil 1.6.1, the frontend, ...),
#      under Home Assistant's own package_constraints.txt, about 20 s; the test then runs Home Assistant
#      with --skip-pip, so it never installs anything itself;
#   3. FFmpeg, which Home Assistant's tts uses to make a pipeline's reply the mp3 it serves (its own images
#      ship one): the static build the imageio-ffmpeg wheel carries, so nothing is needed from apt;
#   4. checks with Home Assistant's own is_installed that every requirement is there.
# Done again only when .venv-ha/.installed differs from what this script installs. About 950 MB.
# PYTHON_HA names the interpreter (default python3.11; Home Assistant 2024.3 runs on 3.11 and 3.12).
set -euo pipefail
cd "$(dirname "$0")/../.."
HA_VERSION=2024.3.3
venv=.venv-ha
FFMPEG=imageio-ffmpeg==0.8.1
want="homeassistant==$HA_VERSION josepy<2 $FFMPEG requirements:$(sha256sum tests/ha/ha_requirements.py | cut -c1-16)"
if [ "$(cat "$venv/.installed" 2>/dev/null)" = "$want" ]; then
  echo "Home Assistant $HA_VERSION is installed in $venv"
  exit 0
fi
PY=${PYTHON_HA:-python3.11}
command -v "$PY" >/dev/null || { echo "error: $PY not found (set PYTHON_HA to a Python 3.11 or 3.12)" >&2; exit 2; }
start=$(date +%s)
echo "installing Home Assistant $HA_VERSION into $venv with $($PY --version) (about 2 minutes, 950 MB)"
rm -rf "$venv"
"$PY" -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
"${pip[@]}" "homeassistant==$HA_VERSION" "josepy<2"
"$venv/bin/python" tests/ha/ha_requirements.py > "$venv/integration-requirements.txt"
echo "  and what its integrations name: $(tr '\n' ' ' < "$venv/integration-requirements.txt")"
constraints=$("$venv/bin/python" -c 'import homeassistant, pathlib; print(pathlib.Path(homeassistant.__file__).parent / "package_constraints.txt")')
"${pip[@]}" -c "$constraints" -r "$venv/integration-requirements.txt" "$FFMPEG"
"$venv/bin/python" tests/ha/ha_requirements.py --check
echo "$want" > "$venv/.installed"
echo "Home Assistant $HA_VERSION installed into $venv in $(( $(date +%s) - start )) s"
