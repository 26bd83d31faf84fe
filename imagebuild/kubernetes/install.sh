#!/bin/sh
# kubeadm for the image (rootfs stage, target arch).
#   install.sh ""       the lab's kubeadm stand-in (imagebuild/kubernetes/kubeadm-standin)
#   install.sh 1.31     kubeadm, kubelet and kubectl from the Kubernetes apt repository
#                       (pkgs.k8s.io, minor version channel), containerd from Debian
set -eu
here=$(dirname "$0")
version=${1:-}
if [ -z "$version" ]; then
	install -m 0755 "$here/kubeadm-standin" /usr/bin/kubeadm
	echo "kubeadm: lab stand-in installed"
	exit 0
fi
case "$version" in
[0-9]*.[0-9]*) ;;
*) echo "KUBERNETES_VERSION must look like 1.31 or 1.31.2, got '$version'" >&2; exit 2 ;;
esac
minor=$(echo "$version" | cut -d. -f1-2)
mkdir -p /etc/apt/keyrings
# apt reads an ASCII-armoured key directly when the file ends in .asc.
curl -fsSL "https://pkgs.k8s.io/core:/stable:/v${minor}/deb/Release.key" -o /etc/apt/keyrings/kubernetes.asc
echo "deb [signed-by=/etc/apt/keyrings/kubernetes.asc] https://pkgs.k8s.io/core:/stable:/v${minor}/deb/ /" \
	> /etc/apt/sources.list.d/kubernetes.list
apt-get update
pin=
if [ "$version" != "$minor" ]; then pin="=${version}-*"; fi
apt-get install -y containerd conntrack ethtool socat iptables "kubeadm${pin}" "kubelet${pin}" "kubectl${pin}"
apt-mark hold kubeadm kubelet kubectl
rm -rf /var/lib/apt/lists/*
# What kubeadm's preflight checks want on a node.
printf 'overlay\nbr_netfilter\n' > /etc/modules-load.d/kubernetes.conf
printf 'net.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\nnet.ipv4.ip_forward = 1\n' \
	> /etc/sysctl.d/90-kubernetes.conf
mkdir -p /etc/containerd
containerd config default | sed 's/SystemdCgroup = false/SystemdCgroup = true/' > /etc/containerd/config.toml
systemctl enable containerd kubelet
echo "kubeadm: $(kubeadm version -o short) from the Kubernetes apt repository"
