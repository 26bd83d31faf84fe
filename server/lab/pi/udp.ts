// Edge: binding and closing the run's UDP sockets.
import type { Socket } from 'node:dgram';

export function bindSocket(sock: Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    sock.once('error', onError);
    sock.bind({ port, address, exclusive: true }, () => {
      sock.off('error', onError);
      resolve();
    });
  });
}

export function closeSocket(sock: Socket): void {
  try {
    sock.close();
  } catch {
    /* already closed */
  }
}
