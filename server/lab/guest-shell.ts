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

/**
 * Runs `script` in the node; resolves with its output once it ended, rejects after timeoutMs.
 *
 * The script is sent only after the node's shell answered a ping on this
 * connection. Without that, a script written right after the previous run's
 * connection closed can be lost: the shell that served the previous run may
 * still be about to read that close as end-of-file, and Linux's virtio console
 * discards unread data when the port is closed (the next shell then waits on an
 * empty port forever). An answer can only come from a shell that already saw
 * this connection open (the node cannot write while the lab is disconnected),
 * so nothing sent after it is lost. Pings that arrive twice only echo twice.
 */
export function guestRun(socket: string, script: string, timeoutMs: number): Promise<GuestRun> {
  const nonce = randomBytes(6).toString('hex');
  const ready = `LAB-READY-${nonce}`;
  const marker = `LAB-END-${nonce}`;
  return new Promise((resolve, reject) => {
    let text = '';
    let sent = false;
    const conn = net.createConnection(socket);
    const ping = () => {
      if (!conn.destroyed) conn.write(`echo ${ready}\n`);
    };
    const pinger = setInterval(ping, 1000);
    const finish = () => {
      clearInterval(pinger);
      clearTimeout(timer);
    };
    const timer = setTimeout(() => {
      finish();
      conn.destroy();
      const state = sent ? 'the script was sent and did not end' : 'the shell never answered a ping';
      reject(new Error(`the node's shell did not finish within ${timeoutMs / 1000} s (${state}); it printed:\n${text.slice(-2000)}`));
    }, timeoutMs);
    conn.on('error', (err) => {
      finish();
      reject(err);
    });
    conn.on('connect', ping);
    conn.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      if (!sent) {
        const r = new RegExp(`^${ready}\\r?\n`, 'm').exec(text);
        if (!r) return;
        sent = true;
        clearInterval(pinger);
        text = text.slice(r.index + r[0].length);
        // The script runs in a subshell whose input is /dev/null: nothing in it can read the rest of the channel.
        conn.write(`(\n${script}\n) </dev/null\necho "${marker} $?"\n`);
      }
      const m = new RegExp(`^${marker} (\\d+)\\r?$`, 'm').exec(text);
      if (!m) return;
      finish();
      conn.end();
      // Pings still queued when the script was sent were answered before it ran.
      const output = text.slice(0, m.index).replace(new RegExp(`^${ready}\\r?\\n`, 'gm'), '');
      resolve({ code: Number(m[1]), output });
    });
  });
}
