#!/usr/bin/env python3
# Sends UDP datagrams with any source port, port 0 included, which no ordinary
# socket can bind: it builds the IPv4 and UDP headers itself on a raw socket
# (IPPROTO_RAW implies IP_HDRINCL; needs CAP_NET_RAW, i.e. root in a test namespace).
# Two ways to call it:
#   udp-forge.py SRC_IP SRC_PORT DST_IP DST_PORT COUNT HEX_PAYLOAD   (one datagram, COUNT times)
#   udp-forge.py < lines    (one datagram per line: SRC_IP SRC_PORT DST_IP DST_PORT HEX_PAYLOAD)
# Prints {"sent": N, "errors": N} at the end.
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
    csum = checksum(pseudo + udp) or 0xFFFF  # 0 on the wire means "no checksum"
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    # Total length and header checksum are filled in by the kernel for IPPROTO_RAW.
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 0, 0, 64, socket.IPPROTO_UDP, 0, socket.inet_aton(src), socket.inet_aton(dst))
    return ip + udp


def requests():
    if len(sys.argv) == 7:
        fields = sys.argv[1:5] + [sys.argv[6]]
        for _ in range(int(sys.argv[5])):
            yield fields
        return
    for line in sys.stdin:
        yield line.split()


def main() -> None:
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sent = errors = 0
    for fields in requests():
        if len(fields) < 4:
            continue
        src, sport, dst, dport = fields[0], int(fields[1]), fields[2], int(fields[3])
        payload = bytes.fromhex(fields[4]) if len(fields) > 4 else b""
        try:
            raw.sendto(datagram(src, sport, dst, dport, payload), (dst, 0))
            sent += 1
        except OSError:
            errors += 1
    print(json.dumps({"sent": sent, "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
