#!/bin/bash -e
# Installs the assistant with the same script every build uses. ASSISTANT_PAYLOAD is the folder made by
# image/payload.sh (wheels for aarch64, models, units); see docs/appliance.md.
: "${ASSISTANT_PAYLOAD:?set ASSISTANT_PAYLOAD in the pi-gen config}"
rm -rf "${ROOTFS_DIR}/tmp/assistant-payload"
cp -r "${ASSISTANT_PAYLOAD}" "${ROOTFS_DIR}/tmp/assistant-payload"
on_chroot <<CHROOT
/tmp/assistant-payload/install.sh /tmp/assistant-payload
rm -rf /tmp/assistant-payload
CHROOT
install -m 0644 files/assistant.toml.example "${ROOTFS_DIR}/boot/firmware/assistant.toml.example"
