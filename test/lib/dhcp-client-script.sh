#!/bin/sh
# Lease script for busybox udhcpc and ISC dhclient in tests: applies the address to
# the interface (so unicast renewals work) and prints what it was given.
if [ -n "$reason" ]; then
  # ISC dhclient
  case "$reason" in
    BOUND|RENEW|REBIND|REBOOT)
      ip addr flush dev "$interface"
      ip addr add "$new_ip_address/${new_subnet_mask:-255.255.255.0}" dev "$interface"
      echo "LEASE reason=$reason ip=$new_ip_address server=$new_dhcp_server_identifier host=$new_host_name file=$new_filename" >&2 ;;
    EXPIRE|FAIL|RELEASE|STOP) ip addr flush dev "$interface" ;;
  esac
  exit 0
fi
case "$1" in
  deconfig) ip addr flush dev "$interface" ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    echo "LEASE event=$1 ip=$ip server=$serverid host=$hostname lease=$lease boot_file=$boot_file siaddr=$siaddr" >&2 ;;
esac
exit 0
