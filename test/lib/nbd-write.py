#!/usr/bin/python3
"""Sends WRITE, TRIM and WRITE_ZEROES to an export, past libnbd's own checks.

Usage: nbd-write.py URI
libnbd refuses writes to a read-only export itself (strict mode), so the
request would never reach the server; with strict mode off it is sent, and
what comes back is the server's answer. Prints one line per command:
"<command> <errno name or OK>".
"""
import errno
import sys

import nbd

h = nbd.NBD()
h.set_strict_mode(0)
h.connect_uri(sys.argv[1])
print("read-only", h.is_read_only(), flush=True)
for name, call in (("write", lambda: h.pwrite(b"\x55" * 512, 0)),
                   ("trim", lambda: h.trim(4096, 0)),
                   ("write-zeroes", lambda: h.zero(4096, 0))):
    try:
        call()
        print(name, "OK", flush=True)
    except nbd.Error as e:
        print(name, errno.errorcode.get(e.errno, str(e.errno)) if e.errno else e.string, flush=True)
h.shutdown()
