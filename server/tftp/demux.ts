// Single-port mode (tftp.singlePort): every transfer is answered from the
// listener's own socket (port 69) instead of a socket of its own, so a client
// behind a NAT or a container port mapping that only lets replies come back from
// the port it sent to still gets its file. Transfers are told apart by the
// client's (address, port) alone: each gets a PeerChannel, which looks like a
// socket to the Transfer (server/tftp/transfer.ts) but sends through the shared
// listener and receives only what the demultiplexer routes to it.
//
// A datagram from a peer with no transfer is not routed anywhere: it cannot
// disturb another transfer. Opening a channel for a peer that already has one
// closes the old one first (a new RRQ from the same address and port restarts
// the transfer; server/tftp/server.ts decides that).
import { EventEmitter } from 'node:events';
import type dgram from 'node:dgram';
import type { DatagramSender } from './send.js';
import type { Peer } from './transfer.js';

const key = (address: string, port: number): string => `${address}:${port}`;

/** One transfer's view of the shared listener: send and receive for one peer only. */
export class PeerChannel extends EventEmitter {
  private closed = false;

  constructor(
    private readonly listener: DatagramSender,
    private readonly onClose: (channel: PeerChannel) => void,
  ) {
    super();
  }

  send(parts: Buffer | Buffer[], port: number, address: string, callback?: (err: Error | null) => void): void {
    // A closed channel refuses as a closed dgram socket does (send.ts turns the throw into a failed send).
    if (this.closed) throw Object.assign(new Error('Not running'), { code: 'ERR_SOCKET_DGRAM_NOT_RUNNING' });
    this.listener.send(parts, port, address, (err) => callback?.(err ?? null));
  }

  /** Idempotent; the first call unroutes the peer and emits 'close' (the transfer ends if it has not). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this);
    this.emit('close');
  }

  deliver(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (!this.closed) this.emit('message', msg, rinfo);
  }
}

/** The transfers answered from one listener, by client address and port. */
export class PeerDemux {
  private readonly byPeer = new Map<string, PeerChannel>();

  constructor(private readonly listener: DatagramSender) {}

  get(address: string, port: number): PeerChannel | undefined {
    return this.byPeer.get(key(address, port));
  }

  /** A channel for `peer`; a channel the peer already had is closed first (its transfer ends). */
  open(peer: Peer): PeerChannel {
    const k = key(peer.address, peer.port);
    this.byPeer.get(k)?.close();
    const channel = new PeerChannel(this.listener, (closing) => {
      // Only the current channel may unroute the peer: a restarted transfer's old channel must not remove the new one.
      if (this.byPeer.get(k) === closing) this.byPeer.delete(k);
    });
    this.byPeer.set(k, channel);
    return channel;
  }

  /** Hands the datagram to the transfer of its sender; false when the sender has none. */
  route(msg: Buffer, rinfo: dgram.RemoteInfo): boolean {
    const channel = this.byPeer.get(key(rinfo.address, rinfo.port));
    if (!channel) return false;
    channel.deliver(msg, rinfo);
    return true;
  }
}
