#!/usr/bin/env bash
# Lets this x86-64 machine run arm64 programs (qemu-user-static through binfmt_misc).
set -euo pipefail
[ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
