#!/usr/bin/env python3
"""Sends UDP datagrams with any source port, 0 included (which no socket API can
bind), through a raw socket that writes its own IPv4 and UDP headers.

Usage: udp-forge.py SRC_IP SRC_PORT DST_IP DST_PORT COUNT PAYLOAD_HEX
Needs root (CAP_NET_RAW); run it inside a test namespace. Prints {"sent": N}.
"""
import json
import socket
import struct
import sys


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def datagram(src: str, sport: int, dst: str, dport: int, payload: bytes) -> bytes:
    length = 8 + len(payload)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, socket.IPPROTO_UDP, length)
    udp = struct.pack("!HHHH", sport, dport, length, 0) + payload
    udp_sum = checksum(pseudo + udp) or 0xFFFF
    udp = struct.pack("!HHHH", sport, dport, length, udp_sum) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 0, 0x4000, 64, socket.IPPROTO_UDP, 0, socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + udp


def main() -> None:
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    src, sport, dst, dport, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    payload = bytes.fromhex(sys.argv[6])
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    packet = datagram(src, sport, dst, dport, payload)
    for _ in range(count):
        raw.sendto(packet, (dst, 0))
    print(json.dumps({"sent": count}))


if __name__ == "__main__":
    main()
