#!/usr/bin/env bash
# Lets this x86-64 machine run arm64 programs: qemu-user through binfmt_misc.
#   binfmt.sh            register the test's qemu-aarch64 (fetched once into the cache)
#   binfmt.sh --remove   take it away again; the system's own entries are never touched
#
# Why not the distribution's qemu-user: trixie's systemd needs qemu-user 11 or later.
# - systemd 256+ starts every unit with pidfd_spawn(); qemu 7.2 (Debian 12) fails it with EINVAL.
# - systemd runs its helper, systemd-executor, from a close-on-exec /proc/self/fd/N: qemu can only
#   load it when the kernel opens the binary for it (binfmt flag O).
# - systemd sets up a unit's sandbox (ProtectSystem=, PrivateTmp=, ...) only after checking mount IDs
#   with statx(STATX_MNT_ID); qemu before 11 returns 0 there, so systemd takes the new root for the
#   old one, never switches into it, and the unit fails with 226/NAMESPACE. qemu 10.0 (Debian 13)
#   has that bug.
# So the test takes qemu-aarch64 from Debian forky's qemu-user package (statically linked, runs on
# Debian 12 and 13), downloaded with apt-get into the cache, and registers it under its own name: the
# kernel tries the newest entry first.
set -euo pipefail
cache=${ASSISTANT_CI_CACHE:-/var/cache/assistant-ci}
qemu=$cache/qemu/qemu-aarch64
name=assistant-ci-aarch64
mnt=/proc/sys/fs/binfmt_misc
[ -e $mnt/status ] || mount -t binfmt_misc binfmt_misc $mnt
[ ! -e $mnt/$name ] || echo -1 > $mnt/$name
[ "${1:-}" != --remove ] || exit 0

if [ ! -x "$qemu" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/lists/partial" "$tmp/archives/partial"
  echo "deb http://deb.debian.org/debian forky main" > "$tmp/sources.list"
  apt=(-q -o Dir::Etc::SourceList="$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
       -o Dir::State::Lists="$tmp/lists" -o Dir::Cache::Archives="$tmp/archives"
       -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o APT::Sandbox::User=root)
  apt-get "${apt[@]}" update >/dev/null
  (cd "$tmp" && apt-get "${apt[@]}" download qemu-user >/dev/null)
  dpkg-deb -x "$tmp"/qemu-user_*.deb "$tmp/x"
  mkdir -p "$cache/qemu"
  install -m 0755 "$tmp/x/usr/bin/qemu-aarch64" "$qemu.part"
  mv "$qemu.part" "$qemu"
  echo "fetched $("$qemu" --version | head -1)" >&2
fi
version=$("$qemu" --version | sed -n '1s/^qemu-aarch64 version \([0-9]*\)\..*/\1/p')
[ "${version:-0}" -ge 11 ] || { echo "$qemu is older than qemu 11; remove it to fetch again" >&2; exit 1; }
magic='\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
# P: keep argv[0]; O: the kernel opens the binary (see above); F: the interpreter is opened now, so it
# also works inside containers and chroots.
echo ":$name:M::$magic:$mask:$qemu:POF" > $mnt/register
