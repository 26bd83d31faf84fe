#!/bin/sh
# make-export ARCH ROOTFS KERNELDIR OUT (squash stage, build-host arch)
# Writes OUT/{root.squashfs, vmlinuz, initrd.img, rpi/ (arm64, armhf), manifest.json}.
set -eu
arch=$1 rootfs=$2 kernel=$3 out=$4
mkdir -p "$out"
# The image's own kernel (the initrd stage names it: an arm64 root also holds the Pi 5's modules).
kver=$(cat "$kernel/version")

# The kernel and initrd are served apart from the root, and nothing a
# diskless node does needs apt's caches or the build's mount points.
mksquashfs "$rootfs" "$out/root.squashfs" -noappend -comp zstd -no-progress -quiet -wildcards \
	-e 'boot/*' 'var/cache/apt/*' 'var/lib/apt/lists/*' 'var/log/*' 'proc/*' 'sys/*' 'dev/*' 'run/*' 'tmp/*' '.dockerenv'
cp "$kernel/vmlinuz" "$out/vmlinuz"
cp "$kernel/initrd.img" "$out/initrd.img"

# The Pi firmware set, laid out as the Pi's bootloader fetches it over TFTP
# (bootfarm serves it under each Pi's serial prefix): Debian's raspi-firmware
# (start*.elf, fixup*.dat, bootcode.bin), the kernel's Raspberry Pi device trees,
# and the kernel and initrd under the names config.txt gives them, per model
# (server/boot/files/pi-models.ts): kernel8.img (Pi 3B+ and Pi 4, 64-bit),
# kernel7.img (Pi 3B+, 32-bit), kernel7l.img (Pi 4, 32-bit). The Pi 5 boots its
# own kernel (kernel_2712.img, initrd_2712.img and bcm2712-rpi-5-b.dtb from the
# initrd stage's 2712/ folder, arm64 only): Debian bookworm's 6.1 has no Pi 5
# device tree (docs/design.md, "Raspberry Pi 5 kernels").
case "$arch" in
arm64|armhf)
	mkdir -p "$out/rpi"
	cp /opt/raspi-firmware/usr/lib/raspi-firmware/* "$out/rpi/"
	dtbs=$(find "$rootfs/usr/lib/linux-image-$kver" -name 'bcm27*-rpi-*.dtb' -o -name 'bcm28*-rpi-*.dtb' | sort)
	[ -n "$dtbs" ] || { echo "make-export: no Raspberry Pi device trees in linux-image-$kver" >&2; exit 1; }
	cp $dtbs "$out/rpi/"
	# A Pi 3's firmware loads the downstream name (bcm2710-rpi-3-b-plus.dtb for a
	# 3B+); Debian's kernel has the upstream one (bcm2837-rpi-3-b-plus.dtb).
	for dtb in "$out"/rpi/bcm2837-rpi-3-*.dtb; do
		[ -e "$dtb" ] || continue
		cp "$dtb" "$out/rpi/$(basename "$dtb" | sed 's/^bcm2837-/bcm2710-/')"
	done
	if [ "$arch" = arm64 ]; then
		cp "$out/vmlinuz" "$out/rpi/kernel8.img"
		if [ -e "$kernel/2712/kernel_2712.img" ]; then
			cp "$kernel/2712/kernel_2712.img" "$kernel/2712/initrd_2712.img" "$kernel/2712/bcm2712-rpi-5-b.dtb" "$out/rpi/"
		fi
	else
		cp "$out/vmlinuz" "$out/rpi/kernel7.img"
		cp "$out/vmlinuz" "$out/rpi/kernel7l.img"
	fi
	cp "$out/initrd.img" "$out/rpi/initrd.img"
	;;
esac

kubeadm=standin
if dpkg-query --admindir="$rootfs/var/lib/dpkg" -W kubeadm >/dev/null 2>&1; then
	kubeadm=$(dpkg-query --admindir="$rootfs/var/lib/dpkg" -W -f '${Version}' kubeadm)
fi
(cd "$out" && find . -type f ! -name manifest.json | sed 's|^\./||' | sort | while read -r f; do
	printf '%s\t%s\t%s\n' "$f" "$(stat -c %s "$f")" "$(sha256sum "$f" | cut -d' ' -f1)"
done) > /tmp/files.tsv
dpkg-query --admindir="$rootfs/var/lib/dpkg" -W -f '${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n' |
	awk -F '\t' '$1 ~ /^ii/ {print $2"\t"$3"\t"$4}' | sort > /tmp/packages.tsv
jq -n --arg arch "$arch" --arg kver "$kver" --arg kubeadm "$kubeadm" \
	--rawfile files /tmp/files.tsv --rawfile packages /tmp/packages.tsv \
	'def rows: split("\n") | map(select(. != "") | split("\t"));
	 {schema: 1, arch: $arch, kernelVersion: $kver, kubeadm: $kubeadm,
	  files: ($files | rows | map({path: .[0], size: (.[1] | tonumber), sha256: .[2]})),
	  packages: ($packages | rows | map({name: .[0], version: .[1], arch: .[2]}))}' > "$out/manifest.json"
echo "make-export: $arch kernel $kver, $(wc -l < /tmp/files.tsv) files, $(wc -l < /tmp/packages.tsv) packages"
ls -la "$out"
