#!/usr/bin/env bash
# Gathers what image/install.sh needs into one folder, on the build machine (any arch, with PyPI):
#   image/payload.sh DEST [WHEELHOUSE]
# The models come from this machine's verified model store (`assistant models fetch` fills it).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest=$1
wheels=${2:-$dest/wheels}
mkdir -p "$dest"
"$here/image/wheelhouse.sh" "$wheels"
[ "$wheels" -ef "$dest/wheels" ] || { rm -rf "$dest/wheels"; cp -r "$wheels" "$dest/wheels"; }
rm -rf "$dest/models" "$dest/systemd" "$dest/mosquitto"
"${ASSISTANT:-assistant}" models fetch >/dev/null
models=$("${ASSISTANT:-assistant}" models list | sed -n '1s/^models in //p')
mkdir -p "$dest/models"
for name in $("${ASSISTANT:-assistant}" models list | awk '$3 == "default" {print $1}'); do
  cp -r "$models/$name" "$dest/models/"
done
cp -r "$here/systemd" "$dest/systemd"
cp -r "$here/image/mosquitto" "$dest/mosquitto"
cp "$here/image/assistant.toml" "$here/image/system-dist-packages.pth" "$here/image/install.sh" "$dest/"
echo "payload ready in $dest: $(du -sh "$dest" | cut -f1)"
