#!/usr/bin/env bash
# Collects every wheel the Pi needs into one folder, on any machine with PyPI: the app itself, and its
# dependencies built for aarch64 / CPython 3.13 (Raspberry Pi OS trixie). The install script then works
# offline from that folder.
#   image/wheelhouse.sh DEST
# DEST/deps is reused while pyproject.toml and requirements-wakeword.txt are unchanged (its key file
# holds their hash); the app's own wheel is rebuilt every time.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest=$1
py=${PYTHON:-python3}
pip=("$py" -m pip --disable-pip-version-check -q)
target=(--only-binary=:all: --implementation cp --python-version 3.13 --abi cp313
        --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64
        --platform manylinux_2_31_aarch64 --platform manylinux_2_34_aarch64 --platform manylinux_2_39_aarch64)
key=$(cat "$here/pyproject.toml" "$here/requirements-wakeword.txt" "$0" | sha256sum | cut -c1-16)

mkdir -p "$dest"
rm -f "$dest"/assistant-*.whl
"${pip[@]}" wheel --no-deps -w "$dest" "$here"
if [ "$(cat "$dest/deps/KEY" 2>/dev/null)" != "$key" ]; then
  rm -rf "$dest/deps"
  mkdir -p "$dest/deps"
  "${pip[@]}" download -d "$dest/deps" "${target[@]}" "$dest"/assistant-*.whl
  "${pip[@]}" download -d "$dest/deps" "${target[@]}" --no-deps -r "$here/requirements-wakeword.txt"
  # pip reads environment markers for the Python running it, not the target's: what only Python 3.13
  # needs (python_version >= '3.13' in pyproject.toml) is fetched by name
  only313=$(sed -n "s/^ *\"\([^;\"]*\); python_version >= '3.13'\".*/\1/p" "$here/pyproject.toml")
  [ -z "$only313" ] || "${pip[@]}" download -d "$dest/deps" "${target[@]}" $only313
  rm -f "$dest"/deps/assistant-*.whl
  echo "$key" > "$dest/deps/KEY"
fi
echo "wheelhouse: $(ls "$dest" "$dest/deps" | grep -c '\.whl$') wheels in $dest"
