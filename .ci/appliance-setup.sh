#!/usr/bin/env bash
# What the appliance boot test needs on a Debian host: mmdebstrap, qemu-user for arm64, systemd-nspawn.
# The distribution's qemu-user-static is too old to run trixie's systemd (.ci/binfmt.sh fetches a newer
# qemu-aarch64 for the test), but mmdebstrap wants its binfmt entry (flag F) to be there.
set -euo pipefail
pkgs=(mmdebstrap qemu-user-static binfmt-support systemd-container arch-test)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
"$(dirname "$0")/binfmt.sh"
