#!/usr/bin/env bash
# Installs the assistant into the system it runs in: the Pi image while it is built (pi-gen's chroot,
# an rpi-image-gen hook) or the CI's arm64 root filesystem. Works offline from a payload folder made by
# image/payload.sh:
#   install.sh PAYLOAD      PAYLOAD/{wheels,models,systemd,mosquitto,assistant.toml,system-dist-packages.pth}
set -euo pipefail
payload=$(cd "$1" && pwd)
prefix=/opt/assistant

# The packages the image needs (pi-gen installs them from the stage's package list first; this only
# fills gaps, e.g. on a plain Raspberry Pi OS).
need=()
for p in python3-venv libportaudio2 alsa-utils mosquitto; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# The user first, so files can be given to it.
install -D -m 0644 "$payload/systemd/sysusers.d/assistant.conf" /usr/lib/sysusers.d/assistant.conf
systemd-sysusers /usr/lib/sysusers.d/assistant.conf

# The app: a venv from the wheelhouse alone. openwakeword without its dependencies (see pyproject.toml).
[ -x "$prefix/venv/bin/python" ] || python3 -m venv "$prefix/venv"
site=$("$prefix/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
rm -f "$site/system-dist-packages.pth"  # pip must see the venv's packages alone (see the file)
pip=("$prefix/venv/bin/python" -m pip install -q --disable-pip-version-check --no-index
     --find-links "$payload/wheels" --find-links "$payload/wheels/deps")
"${pip[@]}" --no-deps openwakeword
"${pip[@]}" --force-reinstall --no-deps "$payload"/wheels/assistant-*.whl
"${pip[@]}" assistant
# HailoRT's Python module from the system, after the venv's own packages: the NPU, when there is one.
install -m 0644 "$payload/system-dist-packages.pth" "$site/"

# The default models, read-only, and refused unless every hash matches the manifest.
rm -rf "$prefix/models.new"
cp -r "$payload/models" "$prefix/models.new"
"$prefix/venv/bin/assistant" models verify --models-dir "$prefix/models.new"
rm -rf "$prefix/models"
mv "$prefix/models.new" "$prefix/models"
chmod -R a+rX,go-w "$prefix"

# The units, the first-boot import, and a config that only root and the service read.
install -D -m 0644 -t /usr/lib/systemd/system "$payload"/systemd/*.service
install -D -m 0755 "$payload/systemd/import-boot-config" /usr/libexec/assistant/import-boot-config
if [ ! -e /etc/assistant/assistant.toml ]; then
  install -d -m 0755 /etc/assistant
  install -m 0640 -o root -g assistant "$payload/assistant.toml" /etc/assistant/assistant.toml
fi
# The box's broker: a size limit, and an ACL example to narrow who may publish what (docs/mqtt.md).
install -D -m 0644 "$payload/mosquitto/assistant.conf" /etc/mosquitto/conf.d/assistant.conf
install -D -m 0644 "$payload/mosquitto/acl.example" /etc/mosquitto/acl.example
systemctl enable assistant.service assistant-firstboot.service mosquitto.service
echo "assistant installed in $prefix"
