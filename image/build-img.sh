#!/usr/bin/env bash
# Assembles an SD card image from a root filesystem folder and a boot folder, without mounting anything
# (no loop devices, no vfat in the kernel needed): mkfs.vfat + mtools for the FAT boot partition,
# mkfs.ext4 -d for the root partition, sfdisk for the MBR table the Pi's firmware reads.
#   image/build-img.sh ROOTDIR BOOTDIR OUT.img [BOOT_MB]
set -euo pipefail
root=$1 boot=$2 out=$3 boot_mb=${4:-512}
disk_id=${DISK_ID:-0x5ca1ab1e}  # cmdline.txt finds the root partition as PARTUUID=<disk id>-02
work=$(mktemp -d "${TMPDIR:-/tmp}/assistant-img.XXXXXX")
trap 'rm -rf "$work"' EXIT

start=8192  # 4 MiB alignment, in 512-byte sectors
boot_sectors=$((boot_mb * 2048))
root_mb=$(( $(du -sm "$root" | cut -f1) * 5 / 4 + 256 ))  # room for the first boots' logs and state
root_sectors=$((root_mb * 2048))

mkfs.vfat -C -F 32 -n bootfs "$work/boot.vfat" $((boot_mb * 1024)) >/dev/null
if [ -n "$(ls -A "$boot")" ]; then
  mcopy -s -p -m -i "$work/boot.vfat" "$boot"/* ::
fi
mkfs.ext4 -q -F -L rootfs -d "$root" "$work/root.ext4" "${root_mb}M"

truncate -s $(( (start + boot_sectors + root_sectors) * 512 )) "$out"
sfdisk --quiet "$out" <<TABLE
label: dos
label-id: $disk_id
unit: sectors
start=$start, size=$boot_sectors, type=c, bootable
start=$((start + boot_sectors)), size=$root_sectors, type=83
TABLE
dd if="$work/boot.vfat" of="$out" bs=512 seek=$start conv=notrunc,sparse status=none
dd if="$work/root.ext4" of="$out" bs=512 seek=$((start + boot_sectors)) conv=notrunc,sparse status=none
echo "$out: boot ${boot_mb} MB FAT32, root ${root_mb} MB ext4, disk id $disk_id"
