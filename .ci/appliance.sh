#!/usr/bin/env bash
# The appliance on arm64, without a Pi: Debian trixie arm64 root filesystem (cached), the app installed
# by image/install.sh under qemu-user, booted with systemd-nspawn and no network. Checks the service is
# active as its own user with the audio group, the watchdog is fed and never fired, no unit failed, the
# first-boot import made a boot-partition assistant.toml the live config and kept the image's as backup,
# a bad one put on the card later is refused with its reason written there, and the venv reaches the
# system's dist-packages (HailoRT's Python module). Prints the service's security exposure. Needs root.
# llama-cpp-python (the [llm] extra) is not in this test: it needs an aarch64 build (docs/appliance.md).
#
# What emulation changes (qemu-user runs the arm64 programs on the host's kernel; see .ci/binfmt.sh):
# - qemu-user has no seccomp and no BPF, so SystemCallFilter=, IPAddressDeny= and DevicePolicy= are
#   accepted but not enforced here; the namespaces of the sandbox (ProtectSystem=, PrivateTmp=, ...)
#   are real.
# - qemu-user refuses clone(CLONE_NEWNS), which systemd needs to hand credentials to a unit, so the
#   test clears ImportCredential=/LoadCredential=/SetCredential= of Debian's own units (journald,
#   sysctl, tmpfiles, getty, ...) with drop-ins. The assistant's units use no credentials (checked).
# - Everything runs several times slower than on a Pi 5; the service's timeouts are the image's.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${ASSISTANT_CI_CACHE:-/var/cache/assistant-ci}
venv=${VIRTUAL_ENV:-$here/.venv}
export ASSISTANT=${ASSISTANT:-$venv/bin/assistant} PYTHON=${PYTHON:-$venv/bin/python}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/assistant-appliance.XXXXXX")
nspawn=
leader=
stop_container() {
  [ -n "$nspawn" ] && kill -0 "$nspawn" 2>/dev/null || return 0
  # From inside: qemu-user remaps the real-time signals nspawn uses to ask for a halt.
  [ -z "$leader" ] || nsenter -t "$leader" -a -- systemctl poweroff 2>/dev/null || true
  for _ in $(seq 60); do kill -0 "$nspawn" 2>/dev/null || break; sleep 1; done
  if kill -0 "$nspawn" 2>/dev/null; then
    kill "$nspawn" 2>/dev/null; sleep 1; kill "$nspawn" 2>/dev/null  # the second SIGTERM kills it
    sleep 5; [ -z "$leader" ] || kill -9 "$leader" 2>/dev/null || true; kill -9 "$nspawn" 2>/dev/null || true
  fi
  wait "$nspawn" 2>/dev/null || true
  nspawn=
}
cleanup() { stop_container; rm -rf "$work"; "$here/.ci/binfmt.sh" --remove || true; }
trap cleanup EXIT

start=$(date +%s)
phase_start=$start
timings=()
t() {  # t NAME: the phase that just ended took so long; then say what comes next
  local now; now=$(date +%s)
  [ -z "${phase:-}" ] || timings+=("$(printf '%-48s %4d s' "$phase" $((now - phase_start)))")
  phase=$1 phase_start=$now
  [ -z "$phase" ] || echo "[$(date +%T)] $phase"
}

# nspawn 252 says this when /run is not a tmpfs (as here on some CI hosts); it is harmless.
quiet() { "$@" 2> >(grep -v 'Attempted to remove disk file system under' >&2); }

t "qemu-user for arm64 (binfmt_misc)"
"$here/.ci/binfmt.sh"
t "root filesystem (built once, then cached)"
tarball=$("$here/.ci/rootfs.sh")
t "payload (aarch64 wheels cached)"
"$here/image/payload.sh" "$work/payload" "$cache/wheelhouse" 2>&1 | grep -v -e '^WARNING: Location' -e BuildBackendWarning \
  | grep -E '^(wheelhouse|payload|all)' || true
[ -e "$work/payload/install.sh" ]
t "unpack the root filesystem"
root=$work/root
mkdir -p "$root"
tar -C "$root" -xf "$tarball"
t "image/install.sh under qemu-user"
# nspawn puts a tmpfs on /tmp: the payload is bound elsewhere, read-only.
quiet systemd-nspawn -q -D "$root" --register=no --keep-unit --private-network \
  --bind-ro="$work/payload:/mnt/payload" --pipe /mnt/payload/install.sh /mnt/payload

t "verify the units against the installed layout"
# trixie's own systemd-analyze: the host's may be older than the units it would read there.
quiet systemd-nspawn -q -D "$root" --register=no --keep-unit --private-network --pipe \
  systemd-analyze verify /usr/lib/systemd/system/assistant.service /usr/lib/systemd/system/assistant-firstboot.service
# No colours or links in the figure's line: nspawn hands systemd-analyze a terminal.
exposure=$(quiet systemd-nspawn -q -D "$root" --register=no --keep-unit --private-network --pipe \
  --setenv=SYSTEMD_COLORS=0 --setenv=SYSTEMD_URLIFY=0 \
  systemd-analyze security --offline=yes --no-pager /usr/lib/systemd/system/assistant.service \
  | sed -n 's/.*Overall exposure level for assistant.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security: assistant.service exposure ${exposure:-unknown}"

# Credentials cannot be set up under qemu-user (see the top): clear them for the units that ask.
if grep -qE '^(Import|Load|Set)Credential' "$root"/usr/lib/systemd/system/assistant*.service; then
  echo "the assistant's units use credentials, which this test cannot set up under qemu-user" >&2; exit 1
fi
for unit in $(grep -lE '^(Import|Load|Set)Credential(Encrypted)?=' "$root"/usr/lib/systemd/system/*.service); do
  [ -L "$unit" ] && continue
  mkdir -p "$root/etc/systemd/system/${unit##*/}.d"
  printf '[Service]\nImportCredential=\nLoadCredential=\nSetCredential=\n' \
    > "$root/etc/systemd/system/${unit##*/}.d/qemu-user-no-credentials.conf"
done

# The test box has no sound card: the user's config (on the "boot partition") plays a WAV in a loop.
mkdir -p "$root/boot/firmware"
cp "$here/image/boot/cmdline.txt" "$root/boot/firmware/"
cat > "$root/boot/firmware/assistant.toml" <<TOML
site = "nspawn"
[audio]
input_device = "file:/opt/assistant/test.wav"
output_device = "none"
TOML
"$PYTHON" - "$root/opt/assistant/test.wav" <<'PY'
import sys, numpy as np
from assistant.audio.wav import write_wav
write_wav(sys.argv[1], (np.random.default_rng(0).normal(0, 300, 16000 * 3)).astype(np.int16), 16000)
PY
echo "assistant-ci" > "$root/etc/hostname"

t "boot until the service is active"
SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn -q -D "$root" -M "assistant-ci-$$" -b --private-network \
  --register=no --keep-unit > "$work/boot.log" 2>&1 &
nspawn=$!
# The container's init: nspawn's child in a new PID namespace (an intermediate child comes and goes first).
# A child that exits between pgrep and readlink has no namespace to read: only a namespace that was read
# and differs from ours counts, and the leader must still be there once found.
host_ns=$(readlink /proc/self/ns/pid)
for _ in $(seq 60); do
  for p in $(pgrep -P "$nspawn" || true); do
    ns=$(readlink "/proc/$p/ns/pid" 2>/dev/null || true)
    [ -n "$ns" ] && [ "$ns" != "$host_ns" ] && kill -0 "$p" 2>/dev/null && leader=$p
  done
  [ -n "$leader" ] && break
  sleep 1
done
boot_log() { echo "--- container console (last 60 lines)"; tail -60 "$work/boot.log"; }
[ -n "$leader" ] || { echo "the container's init was not found" >&2; boot_log; exit 1; }
inside() { nsenter -t "$leader" -a -- "$@"; }  # runs a command in the booted container
state=unknown
for _ in $(seq 150); do  # 5 min: the boot, then the service's own start timeout (3 min)
  kill -0 "$leader" 2>/dev/null || { echo "the container stopped while booting" >&2; boot_log; exit 1; }
  state=$(inside systemctl is-active assistant.service 2>/dev/null || true)
  case $state in active|failed) break ;; esac
  sleep 2
done
echo "service: $state ($(inside systemctl show -p StatusText --value assistant.service 2>/dev/null || true))"
t "service running for 75 s (2.5 watchdog periods)"
ping1=$(inside systemctl show -p WatchdogTimestampMonotonic --value assistant.service 2>/dev/null || echo 0)
sleep 75
ping2=$(inside systemctl show -p WatchdogTimestampMonotonic --value assistant.service 2>/dev/null || echo 0)
t "checks"
passed=0 failed=0
check() { if "$@"; then echo "ok   $*"; passed=$((passed + 1)); else echo "FAIL $*"; failed=$((failed + 1)); fi; }
check test "$(inside systemctl is-active assistant.service)" = active
check test "$(inside systemctl show -p NRestarts --value assistant.service)" = 0
check test "$(inside systemctl show -p WatchdogUSec --value assistant.service)" = 30s
# WATCHDOG=1 is sent from the frame loop only: a later ping means audio frames kept flowing.
check test "${ping2:-0}" -gt "${ping1:-0}"
journal=$(inside journalctl -u assistant.service -o cat) || journal=
check test "${#journal}" -gt 0  # the service's journal could be read
check test -z "$(grep -i 'watchdog timeout' <<<"$journal")"
pid=$(inside systemctl show -p MainPID --value assistant.service) || pid=0
check test "$(inside stat -c %U "/proc/$pid")" = assistant
gid=$(inside getent group audio | cut -d: -f3) || gid=none
check inside grep -Eq "^Groups:.*\\b$gid\\b" "/proc/$pid/status"
failed_units=$(inside systemctl list-units --failed --plain --no-legend) || failed_units="(systemctl failed)"
check test -z "$failed_units"
check test "$(inside systemctl show -p Result --value assistant-firstboot.service)" = success
check test ! -e "$root/boot/firmware/assistant.toml"
check grep -q 'site = "nspawn"' "$root/etc/assistant/assistant.toml"
check test "$(stat -c '%a %u %g' "$root/etc/assistant/assistant.toml")" = "640 0 $(inside getent group assistant | cut -d: -f3)"
check grep -q 'mqtt://127.0.0.1:1883' "$root/etc/assistant/assistant.toml.bak"  # the image's own config
check awk "BEGIN { exit !(${exposure:-99} <= 2.5) }"
check inside /opt/assistant/venv/bin/python -c "import sys; assert '/usr/lib/python3/dist-packages' in sys.path"
# A bad config on the card later: the running box keeps its config and the card says why.
live=$(sha256sum < "$root/etc/assistant/assistant.toml")
printf '[mqtt]\nurl = "http://broker"\n' > "$root/boot/firmware/assistant.toml"
inside systemctl start assistant-firstboot.service || true
check test "$(sha256sum < "$root/etc/assistant/assistant.toml")" = "$live"
check test -e "$root/boot/firmware/assistant.toml.rejected"
check grep -q "'mqtt.url' should" "$root/boot/firmware/assistant-config-error.txt"
check test "$(inside systemctl show -p Result --value assistant-firstboot.service)" = success
inside systemctl status assistant.service --no-pager | head -12 || true
if [ $failed -ne 0 ]; then
  boot_log
  inside systemctl list-units --failed --no-pager || true
  inside journalctl -b --no-pager | tail -80 || true
fi
t "power off"
stop_container
t ""
echo "phase timings:"
printf '  %s\n' "${timings[@]}"
printf '  %-48s %4d s\n' total $(( $(date +%s) - start ))
echo "appliance: $passed passed, $failed failed"
[ $failed -eq 0 ]
