// The DHCP sockets. node:dgram cannot report the ingress interface (no IP_PKTINFO)
// and cannot unicast to a client that has no address yet, so (measured in network
// namespaces; docs/design.md, "DHCP sockets"):
// - a receiver bound to 0.0.0.0:67 gets the broadcasts of every segment;
// - a sender bound to the served interface's address:67 makes Linux route
//   255.255.255.255 out of that interface with that source address. Unicasts to
//   that address (renewals, relays) land on it too, so it also receives.
// One process therefore serves one segment directly; relays (giaddr) reach others.
import dgram from 'node:dgram';
import { networkInterfaces } from 'node:os';
import type { Listener } from './context.js';
import type { Destination } from './reply.js';

export type DatagramHandler = (data: Buffer, source: Destination, listener: Listener) => void;

export interface DhcpSocketOptions {
  serverAddress: string;
  interfaceName: string | undefined;
  port: number;
  /** The PXE boot-server port (4011); undefined to not listen. */
  bootServerPort: number | undefined;
}

import { SetupError } from '../../errors.js';

class SocketSetupError extends SetupError {}

function explainBindError(err: NodeJS.ErrnoException, address: string, port: number): SocketSetupError {
  switch (err.code) {
    case 'EACCES':
      return new SocketSetupError(`cannot bind ${address}:${port}: ports below 1024 need root or CAP_NET_BIND_SERVICE`);
    case 'EADDRINUSE':
      return new SocketSetupError(`cannot bind ${address}:${port}: another DHCP server is listening there`);
    case 'EADDRNOTAVAIL':
      return new SocketSetupError(`cannot bind ${address}:${port}: ${address} is not an address of this host (server.address)`);
    default:
      return new SocketSetupError(`cannot bind ${address}:${port}: ${err.message}`);
  }
}

/** Checks that server.address is on the served interface, with a message that says how to fix it. */
function checkInterface(interfaceName: string | undefined, serverAddress: string): void {
  if (!interfaceName) return;
  const all = networkInterfaces();
  const addrs = all[interfaceName];
  if (!addrs) {
    throw new SocketSetupError(`dhcp.interface ${interfaceName} does not exist on this host (have: ${Object.keys(all).join(', ')})`);
  }
  const v4 = addrs.filter((a) => a.family === 'IPv4').map((a) => a.address);
  if (!v4.includes(serverAddress)) {
    throw new SocketSetupError(
      `server.address ${serverAddress} is not on dhcp.interface ${interfaceName} (its IPv4 addresses: ${v4.join(', ') || 'none'})`,
    );
  }
}

function bindSocket(address: string, port: number, onMessage: (msg: Buffer, rinfo: dgram.RemoteInfo) => void): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    const onError = (err: NodeJS.ErrnoException) => {
      socket.close();
      reject(explainBindError(err, address, port));
    };
    socket.once('error', onError);
    socket.on('message', onMessage);
    socket.bind({ address, port, exclusive: true }, () => {
      socket.off('error', onError);
      socket.setBroadcast(true);
      resolve(socket);
    });
  });
}

/**
 * Our own two sockets on port 67 need SO_REUSEADDR, which would also let a second
 * DHCP server bind beside us unnoticed. So first bind the wildcard address without
 * it: that fails with EADDRINUSE if anything else holds the port.
 */
function probeFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const probe = dgram.createSocket({ type: 'udp4', reuseAddr: false });
    probe.once('error', (err: NodeJS.ErrnoException) => {
      probe.close();
      reject(explainBindError(err, '0.0.0.0', port));
    });
    probe.bind({ address: '0.0.0.0', port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

/**
 * Replies waiting in libuv's queue (the kernel's send buffer is full) beyond which
 * new ones are dropped: memory stays bounded whatever the destinations do.
 */
const MAX_QUEUED_REPLIES = 256;

export class SendQueueFullError extends Error {}

export class DhcpSockets {
  private constructor(
    private readonly receiver: dgram.Socket,
    /** Broadcasts (255.255.255.255): the replies a client without an address waits for. */
    private readonly sender: dgram.Socket,
    /**
     * Unicasts (ciaddr, relays). Their own socket, because a unicast to an address
     * nobody answers ARP for waits in the kernel's neighbour queue, charged to the
     * socket's send buffer for seconds: forged INFORMs or RENEWs naming absent
     * hosts would otherwise fill it and stall every broadcast OFFER behind them.
     */
    private readonly unicaster: dgram.Socket,
    private readonly bootServer: dgram.Socket | undefined,
  ) {}

  static async open(options: DhcpSocketOptions, handler: DatagramHandler, onSocketError: (err: Error) => void): Promise<DhcpSockets> {
    checkInterface(options.interfaceName, options.serverAddress);
    const deliver = (listener: Listener) => (msg: Buffer, rinfo: dgram.RemoteInfo) =>
      handler(msg, { address: rinfo.address, port: rinfo.port }, listener);
    await probeFree(options.port);
    if (options.bootServerPort !== undefined) await probeFree(options.bootServerPort);
    const opened: dgram.Socket[] = [];
    try {
      const sender = await bindSocket(options.serverAddress, options.port, deliver('dhcp'));
      opened.push(sender);
      const receiver = await bindSocket('0.0.0.0', options.port, deliver('dhcp'));
      opened.push(receiver);
      // Bound last to the server address, so Linux delivers unicasts to it; it hands them to the same handler.
      const unicaster = await bindSocket(options.serverAddress, options.port, deliver('dhcp'));
      opened.push(unicaster);
      const bootServer =
        options.bootServerPort !== undefined ? await bindSocket('0.0.0.0', options.bootServerPort, deliver('boot-server')) : undefined;
      if (bootServer) opened.push(bootServer);
      // After setup, a socket error (e.g. ENETUNREACH on one send) is reported, never thrown.
      for (const s of opened) s.on('error', onSocketError);
      return new DhcpSockets(receiver, sender, unicaster, bootServer);
    } catch (err) {
      for (const s of opened) s.close();
      throw err;
    }
  }

  /**
   * Sends without waiting. Never throws: node:dgram throws synchronously for some
   * destinations (port 0, a closed socket) and reports others (no route) later;
   * both reach `onError`.
   */
  send(listener: Listener, data: Buffer, destination: Destination, onError: (err: Error) => void): void {
    const socket =
      listener === 'boot-server' && this.bootServer
        ? this.bootServer
        : destination.address === '255.255.255.255'
          ? this.sender
          : this.unicaster;
    if (socket.getSendQueueCount() >= MAX_QUEUED_REPLIES) {
      onError(new SendQueueFullError(`${MAX_QUEUED_REPLIES} replies already wait to be sent on this socket`));
      return;
    }
    try {
      socket.send(data, destination.port, destination.address, (err) => {
        if (err) onError(err);
      });
    } catch (err) {
      onError(err instanceof Error ? err : new Error(String(err)));
    }
  }

  async close(): Promise<void> {
    const sockets = [this.receiver, this.sender, this.unicaster, this.bootServer].filter((s): s is dgram.Socket => s !== undefined);
    await Promise.all(sockets.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}
