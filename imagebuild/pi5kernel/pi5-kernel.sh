#!/bin/sh
# pi5-kernel (pi5kernel stage, build-host arch): the Pi 5's kernel from Debian unstable.
#
#   pi5-kernel fetch PINNED_ABI PINNED_VERSION DEST
#       downloads linux-{base,binary,modules}-<abi> (arm64) from unstable and lays
#       them out in DEST: modules under usr/lib/modules/<abi> (depmod'ed), the kernel
#       as boot/kernel_2712.img, boot/bcm2712-rpi-5-b.dtb, and boot/version (<abi>,
#       read by the initrd stage).
#   pi5-kernel candidates PINNED_ABI PINNED_VERSION PACKAGES
#       which <abi> <version> to try, in order, from an arm64 Packages file.
#   pi5-kernel check ROOT ABI
#       exits 0 if ROOT (an unpacked kernel) has what a Pi 5 boots from; otherwise
#       prints what it lacks.
#
# Why a fallback: unstable keeps only its newest kernel, so the pinned one
# (PI5_KERNEL in imagebuild/Dockerfile) vanishes from the live archive when a newer
# one lands, and a build that insists on it fails at apt-get download. When the
# pinned packages are gone, the newest linux-image-<abi>-arm64 in unstable whose
# packages carry the bcm2712 device tree and the RP1 Ethernet path is used
# instead, said in one "pi5kernel:" line of the build log; none such fails the
# build naming what each candidate lacked (docs/design.md, "Raspberry Pi 5 kernels").
set -eu

DTB=dtb/broadcom/bcm2712-rpi-5-b.dtb
# The Pi 5's Ethernet: RP1 over PCIe (rp1_pci, its clocks and pins), the MIP
# interrupt controller in front of it, and macb, the MAC on RP1.
MODULES="rp1_pci clk_rp1 pinctrl_rp1 irq_bcm2712_mip macb"
# At most this many fallback kernels are downloaded (~100 MB each) before giving up.
MAX_TRIES=3

log() { echo "pi5kernel: $*" >&2; }

# "name version" for each paragraph of a Packages file.
package_versions() {
	awk '/^Package:/ { p = $2 } /^Version:/ { v = $2 } /^$/ { if (p != "") print p, v; p = v = "" } END { if (p != "") print p, v }' "$1"
}

candidates() {
	pinned=$1 pinned_version=$2 packages=$3
	list=$(package_versions "$packages")
	has() { printf '%s\n' "$list" | grep -qxF "$1 $2"; }
	if has "linux-base-$pinned" "$pinned_version" && has "linux-binary-$pinned" "$pinned_version" &&
		has "linux-modules-$pinned" "$pinned_version"; then
		echo "$pinned $pinned_version"
		return 0
	fi
	# linux-image-<abi>-arm64 with a plain abi (7.2.13+deb14, 6.1.0-41): not the
	# -rt-, -cloud- or 16k flavours, nor -unsigned or -dbg packages.
	found=$(printf '%s\n' "$list" | sed -n 's/^linux-image-\([0-9][^ -]*\(-[0-9][0-9]*\)\{0,1\}-arm64\) \(.*\)$/\1 \3/p' |
		while read -r abi version; do
			if has "linux-base-$abi" "$version" && has "linux-binary-$abi" "$version" && has "linux-modules-$abi" "$version"; then
				echo "$abi $version"
			fi
		done)
	if [ -z "$found" ]; then
		log "the pinned kernel $pinned ($pinned_version) is gone from unstable, and unstable has no linux-image-*-arm64 with its linux-base-, linux-binary- and linux-modules- packages"
		return 1
	fi
	# Newest first, by Debian's version order (a handful of kernels: pick the newest left each time).
	sorted=""
	remaining=$found
	while [ -n "$remaining" ]; do
		best=""
		while read -r abi version; do
			if [ -z "$best" ] || dpkg --compare-versions "$version" gt "${best#* }"; then best="$abi $version"; fi
		done <<EOF
$remaining
EOF
		sorted="$sorted$best
"
		remaining=$(printf '%s\n' "$remaining" | grep -vxF "$best" || true)
	done
	log "the pinned kernel $pinned ($pinned_version) is gone from unstable; trying the newest linux-image-*-arm64 there instead: $(printf '%s' "$sorted" | head -n "$MAX_TRIES" | paste -sd, - | sed 's/,/, /g')"
	printf '%s' "$sorted"
}

check() {
	root=$1 abi=$2
	m="$root/usr/lib/modules/$abi"
	missing=""
	[ -f "$m/$DTB" ] || missing="$missing bcm2712-rpi-5-b.dtb"
	for mod in $MODULES; do
		# A module's file may spell it with - or _ (modprobe treats them alike), and
		# it may be built in (modules.builtin) rather than a file.
		pattern=$(echo "$mod" | sed 's/_/[-_]/g')
		if [ -n "$(find "$m" -name "$pattern.ko*" 2>/dev/null | head -n 1)" ]; then continue; fi
		if [ -f "$m/modules.builtin" ] && grep -q "/$pattern\.ko\$" "$m/modules.builtin"; then continue; fi
		missing="$missing $mod"
	done
	if [ -n "$missing" ]; then
		echo "${missing# }"
		return 1
	fi
}

fetch() {
	pinned=$1 pinned_version=$2 dest=$3
	packages=$(mktemp)
	# unstable's own arm64 index only (bookworm's arm64 lists may be there too).
	found_list=""
	for f in /var/lib/apt/lists/*_dists_unstable_main_binary-arm64_Packages*; do
		[ -e "$f" ] || continue
		/usr/lib/apt/apt-helper cat-file "$f" >"$packages"
		found_list=1
	done
	[ -n "$found_list" ] || {
		log "no index of unstable's arm64 packages under /var/lib/apt/lists (apt-get update with the unstable entry first)"
		exit 1
	}
	all=$(candidates "$pinned" "$pinned_version" "$packages")
	rm -f "$packages"
	tries=$(printf '%s\n' "$all" | head -n "$MAX_TRIES")
	work=$(mktemp -d)
	# apt-get download fetches as _apt, which must be able to write here.
	chmod 755 "$work"
	lacks=""
	# One "<abi> <version>" per line: the loop reads them with set --.
	old_ifs=$IFS
	IFS='
'
	for try in $tries; do
		IFS=$old_ifs
		set -- $try
		abi=$1 version=$2
		rm -rf "$work/root" "$work"/*.deb
		mkdir -p "$work/root"
		for p in base binary modules; do (cd "$work" && apt-get download "linux-$p-$abi:arm64=$version"); done
		for d in "$work"/linux-*.deb; do dpkg-deb -x "$d" "$work/root"; done
		if what=$(check "$work/root" "$abi"); then
			[ "$abi $version" = "$pinned $pinned_version" ] ||
				log "using $abi ($version) instead of the pinned $pinned ($pinned_version): move PI5_KERNEL and PI5_KERNEL_VERSION in imagebuild/Dockerfile to it"
			m="$work/root/usr/lib/modules/$abi"
			mkdir -p "$dest/boot" "$dest/usr/lib/modules"
			mv "$m/vmlinuz" "$dest/boot/kernel_2712.img"
			cp "$m/$DTB" "$dest/boot/"
			rm -rf "$m/dtb"
			mv "$m" "$dest/usr/lib/modules/"
			echo "$abi" >"$dest/boot/version"
			rm -rf "$work"
			ln -s usr/lib "$dest/lib"
			depmod -b "$dest" "$abi"
			rm "$dest/lib"
			return 0
		fi
		log "$abi ($version) lacks $what"
		lacks="$lacks; $abi ($version) lacks $what"
	done
	rm -rf "$work"
	log "no kernel in unstable has the Pi 5's device tree and Ethernet modules (${lacks#; }): the image cannot carry a Pi 5 kernel"
	exit 1
}

case "${1:-}" in
candidates) candidates "$2" "$3" "$4" ;;
check) check "$2" "$3" ;;
fetch) fetch "$2" "$3" "$4" ;;
*)
	echo "usage: pi5-kernel fetch PINNED_ABI PINNED_VERSION DEST | candidates PINNED_ABI PINNED_VERSION PACKAGES | check ROOT ABI" >&2
	exit 2
	;;
esac
