#!/bin/sh
# Final configuration of the root image (rootfs stage, runs in the target arch).
set -eu
kver=$(ls /lib/modules | sort -V | tail -n 1)

# Modules in the initrd (MODULES=list): the root's path (NBD, squashfs, overlay,
# loop for to-RAM), QEMU's virtio NIC, and common NICs of real machines
# (Intel, Realtek; the Pi 4's GENET (module genet, driver bcmgenet), the Pi 3B+'s lan78xx,
# older Pis' smsc95xx).
# Only modules this kernel has are listed, so init's modprobe never complains.
{
	echo "# bootfarm: written by imagebuild/rootfs/setup.sh for $kver"
	for m in nbd squashfs overlay loop virtio_pci virtio_mmio virtio_net af_packet \
		e1000 e1000e igb ixgbe r8169 tg3 bnxt_en genet lan78xx smsc95xx; do
		if modinfo -k "$kver" "$m" >/dev/null 2>&1; then echo "$m"; fi
	done
} > /etc/initramfs-tools/modules

# nbd-client ships two hooks that add every network driver and a local-top
# script for nbdroot=; bootfarm's hook and boot script replace them.
rm -f /usr/share/initramfs-tools/hooks/nbd /usr/share/initramfs-tools/hooks/nbd-client \
	/usr/share/initramfs-tools/scripts/local-top/nbd
chmod 0755 /usr/lib/bootfarm/preinit /usr/lib/bootfarm/agent /etc/initramfs-tools/hooks/bootfarm \
	/etc/initramfs-tools/scripts/init-premount/bootfarm-linkup
install -m 0644 /usr/lib/bootfarm/bootfarm-agent.service /etc/systemd/system/bootfarm-agent.service
systemctl enable bootfarm-agent.service

echo bootfarm > /etc/hostname
# Empty: systemd makes a transient machine ID per boot (every node shares the image).
: > /etc/machine-id
: > /etc/fstab
# Nothing for a diskless node to wait on or to write to disk.
systemctl mask systemd-remount-fs.service apt-daily.timer apt-daily-upgrade.timer 2>/dev/null || true
