// The one way TFTP code sends a datagram. dgram.send throws synchronously for a
// port outside 1-65535 (ERR_SOCKET_BAD_PORT: a forged source port 0 is enough)
// and for a closed socket (ERR_SOCKET_DGRAM_NOT_RUNNING), and reports kernel
// errors (EPERM from a firewall, ENOBUFS) to its callback: every outcome here
// ends in `onDone`, never in a throw or an unhandled error.

/** The part of a dgram socket a sender needs; a PeerChannel (server/tftp/demux.ts) and tests' fakes are one too. */
export interface DatagramSender {
  send(parts: Buffer | Buffer[], port: number, address: string, callback?: (err: Error | null) => void): void;
}

/** A port a datagram can be sent to. Port 0 is a valid source on the wire but no destination. */
export function isReplyablePort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

/**
 * Sends `parts` to address:port. Returns false when nothing was handed to the
 * kernel (bad port, closed socket); `onDone` then runs synchronously with the
 * reason. Otherwise `onDone` runs once the datagram left, with the kernel's error if any.
 */
export function sendGuarded(
  socket: DatagramSender,
  parts: Buffer | Buffer[],
  port: number,
  address: string,
  onDone: (err: Error | null) => void = () => undefined,
): boolean {
  if (!isReplyablePort(port)) {
    onDone(new Error(`cannot send to port ${port}`));
    return false;
  }
  try {
    socket.send(parts, port, address, (err) => onDone(err ?? null));
    return true;
  } catch (err) {
    onDone(err instanceof Error ? err : new Error(String(err)));
    return false;
  }
}
