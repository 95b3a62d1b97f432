#!/usr/bin/env bash
# An arm64 Debian trixie root filesystem for the appliance boot test, cached outside the clone.
# The cache key is the hash of this script: change the package list or the options and it is rebuilt.
# Prints the tarball's path on stdout.
set -euo pipefail
cache=${ASSISTANT_CI_CACHE:-/var/cache/assistant-ci}
key=$(sha256sum "$0" | cut -c1-16)
tarball=$cache/rootfs-trixie-arm64-$key.tar
if [ ! -s "$tarball" ]; then
  mkdir -p "$cache"
  "$(dirname "$0")/binfmt.sh"
  # systemd to boot it; python3-venv for the app's venv; libportaudio2 for audio; mosquitto as the
  # in-house broker the image also ships. No kernel: nspawn boots the rootfs on the host's kernel.
  pkgs=systemd,systemd-sysv,dbus,python3,python3-venv,libportaudio2,alsa-utils,mosquitto,mtools,dosfstools
  start=$(date +%s)
  mmdebstrap --quiet --format=tar --architectures=arm64 --variant=minbase --include="$pkgs" \
    trixie "$tarball.part" http://deb.debian.org/debian >&2
  mv "$tarball.part" "$tarball"
  echo "rootfs built in $(( $(date +%s) - start )) s: $tarball" >&2
  find "$cache" -maxdepth 1 -name 'rootfs-trixie-arm64-*.tar' ! -name "${tarball##*/}" -delete
fi
echo "$tarball"
