#!/usr/bin/python3
"""Holds one libnbd connection across a change on the server side.

Usage: nbd-hold.py URI OFFSET LENGTH
Connects, reads LENGTH bytes at OFFSET and prints their sha256, prints "READY",
waits for a line on stdin, reads the same range again on the same connection
and prints its sha256. Used to show that publishing a new image version never
changes the bytes under a connected client.
"""
import hashlib
import sys

import nbd

uri, offset, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
h = nbd.NBD()
h.connect_uri(uri)
print("BEFORE", hashlib.sha256(h.pread(length, offset)).hexdigest(), flush=True)
print("READY", flush=True)
sys.stdin.readline()
print("AFTER", hashlib.sha256(h.pread(length, offset)).hexdigest(), flush=True)
h.shutdown()
