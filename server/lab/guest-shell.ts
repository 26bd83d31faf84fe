// The lab's command channel into a booted QEMU node: a virtio serial port
// (server/lab/qemu.ts, controlSocket) on which the node runs a shell that the
// lab's own configuration starts (GUEST_SHELL_RCFILE, an RCFILE entry of the lab
// only; images carry nothing for it). The lab writes a script, the node's shell
// runs it and prints an end marker with its exit status.
import net from 'node:net';
import { randomBytes } from 'node:crypto';

/** The node side: a shell on the port, opened again whenever the lab disconnects (the shell then reads end-of-file). */
export const GUEST_SHELL_RCFILE = [
  "setsid sh -c 'p=/dev/virtio-ports/bootfarm.lab",
  'for i in $(seq 120); do [ -e $p ] && break; sleep 1; done',
  // One open for both directions: a virtio port is opened by one file at a time.
  "while [ -e $p ]; do sh <>$p >&0 2>&0; sleep 1; done' </dev/null >/dev/null 2>&1 &",
].join('; ');

export interface GuestRun {
  code: number;
  output: string;
}

/** Runs `script` in the node; resolves with its output once it ended, rejects after timeoutMs. */
export function guestRun(socket: string, script: string, timeoutMs: number): Promise<GuestRun> {
  const marker = `LAB-END-${randomBytes(6).toString('hex')}`;
  return new Promise((resolve, reject) => {
    let text = '';
    const conn = net.createConnection(socket);
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`the node's shell did not finish within ${timeoutMs / 1000} s; it printed:\n${text.slice(-2000)}`));
    }, timeoutMs);
    conn.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    conn.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const m = new RegExp(`^${marker} (\\d+)\\r?$`, 'm').exec(text);
      if (!m) return;
      clearTimeout(timer);
      conn.end();
      resolve({ code: Number(m[1]), output: text.slice(0, m.index) });
    });
    // The script runs in a subshell whose input is /dev/null: nothing in it can read the rest of the channel.
    conn.write(`(\n${script}\n) </dev/null\necho "${marker} $?"\n`);
  });
}
