#!/usr/bin/python3
"""Holds one libnbd connection across a change on the server side.

Usage: nbd-hold.py URI OFFSET LENGTH GO_FILE
Connects, reads LENGTH bytes at OFFSET and prints their sha256, prints "READY",
waits until GO_FILE exists, reads the same range again on the same connection,
prints its sha256 and disconnects. Used to show that publishing a new image
version never changes the bytes under a connected client, and that a version a
connection reads is kept. (A file, not stdin: processes started through
`ip netns exec` by the test helpers have no stdin to wait on.)
"""
import hashlib
import os
import sys
import time

import nbd

uri, offset, length, go_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
h = nbd.NBD()
h.connect_uri(uri)
print("BEFORE", hashlib.sha256(h.pread(length, offset)).hexdigest(), flush=True)
print("READY", flush=True)
deadline = time.monotonic() + 600
while not os.path.exists(go_file):
    if time.monotonic() > deadline:
        sys.exit("nbd-hold: " + go_file + " did not appear within 600 s")
    time.sleep(0.1)
print("AFTER", hashlib.sha256(h.pread(length, offset)).hexdigest(), flush=True)
h.shutdown()
