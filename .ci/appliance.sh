#!/usr/bin/env bash
# The appliance on arm64, without a Pi: Debian trixie arm64 root filesystem (cached), the app installed
# by image/install.sh under qemu-user, booted with systemd-nspawn and no network. Checks the service is
# active as its own user with the audio group, the watchdog never fired, no unit failed, and the
# first-boot import made a boot-partition assistant.toml the live config. Needs root.
# llama-cpp-python (the [llm] extra) is not in this test: it needs an aarch64 build (docs/appliance.md).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${ASSISTANT_CI_CACHE:-/var/cache/assistant-ci}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/assistant-appliance.XXXXXX")
machine=assistant-ci-$$
cleanup() { [ -z "${nspawn:-}" ] || { kill "$nspawn" 2>/dev/null; wait "$nspawn" 2>/dev/null; }; rm -rf "$work"; }
trap cleanup EXIT
t() { echo "[$(date +%T)] $*"; }

t "rootfs"; tarball=$("$here/.ci/rootfs.sh")
t "payload"; ASSISTANT=${ASSISTANT:-$here/.venv/bin/assistant} PYTHON=${PYTHON:-$here/.venv/bin/python} \
  "$here/image/payload.sh" "$work/payload" "$cache/wheelhouse" >/dev/null
root=$work/root
mkdir -p "$root"
tar -C "$root" -xf "$tarball"
t "install (under qemu-user)"
mkdir -p "$root/tmp/payload"; cp -r "$work/payload/." "$root/tmp/payload/"
systemd-nspawn -q -D "$root" --private-network --pipe /tmp/payload/install.sh /tmp/payload
rm -rf "$root/tmp/payload"

t "verify the units against the installed layout"
systemd-analyze verify --root="$root" /usr/lib/systemd/system/assistant.service \
  /usr/lib/systemd/system/assistant-firstboot.service

# The test box has no sound card: the user's config (on the "boot partition") plays a WAV in a loop.
mkdir -p "$root/boot/firmware"
cp "$here/image/boot/cmdline.txt" "$root/boot/firmware/"
cat > "$root/boot/firmware/assistant.toml" <<TOML
site = "nspawn"
[audio]
input_device = "file:/opt/assistant/test.wav"
output_device = "none"
TOML
"${PYTHON:-$here/.venv/bin/python}" - "$root/opt/assistant/test.wav" <<'PY'
import sys, numpy as np
from assistant.audio.wav import write_wav
write_wav(sys.argv[1], (np.random.default_rng(0).normal(0, 300, 16000 * 3)).astype(np.int16), 16000)
PY
echo "assistant-ci" > "$root/etc/hostname"

t "boot"
SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn -q -D "$root" -M "$machine" -b --private-network \
  --register=no --keep-unit > "$work/boot.log" 2>&1 &
nspawn=$!
in() { nsenter -t "$(pgrep -P "$nspawn" | head -1)" -a -- "$@"; }  # run inside the booted container
for _ in $(seq 300); do
  state=$(in systemctl is-active assistant.service 2>/dev/null || true)
  [ "$state" = active ] && break
  sleep 2
done
t "service: $state"
sleep 75  # more than two watchdog timeouts (30 s) on the looping test input
fail=0
check() { if "$@"; then echo "ok   $*"; else echo "FAIL $*"; fail=1; fi; }
check test "$(in systemctl is-active assistant.service)" = active
check test "$(in systemctl show -p NRestarts --value assistant.service)" = 0
check test -z "$(in journalctl -u assistant.service -o cat | grep -i 'watchdog timeout')"
pid=$(in systemctl show -p MainPID --value assistant.service)
check test "$(in stat -c %U "/proc/$pid")" = assistant
check in sh -c "grep -Eq '^Groups:.*\\b$(in getent group audio | cut -d: -f3)\\b' /proc/$pid/status"
check test -z "$(in systemctl list-units --failed --plain --no-legend)"
check test ! -e "$root/boot/firmware/assistant.toml"
check grep -q 'site = "nspawn"' "$root/etc/assistant/assistant.toml"
check test "$(stat -c '%a %U' "$root/etc/assistant/assistant.toml")" = "640 root"
in systemctl status assistant.service --no-pager | head -12 || true
[ $fail -eq 0 ] || { in journalctl -b --no-pager | tail -60; exit 1; }
t "appliance test passed"
