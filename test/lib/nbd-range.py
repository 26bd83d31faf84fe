#!/usr/bin/python3
"""Reads one range through libnbd and prints its sha256.

Usage: nbd-range.py URI OFFSET LENGTH
"""
import hashlib
import sys

import nbd

uri, offset, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
h = nbd.NBD()
h.connect_uri(uri)
digest = hashlib.sha256()
done = 0
while done < length:
    n = min(4 * 1024 * 1024, length - done)
    digest.update(h.pread(n, offset + done))
    done += n
print(digest.hexdigest())
h.shutdown()
