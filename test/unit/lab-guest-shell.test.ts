// The lab's command channel (server/lab/guest-shell.ts) against a real sh behind
// a Unix socket that behaves like a node's virtio console port between two
// runs: what the lab writes before the node's next shell has the port open is
// lost (Linux discards unread data of a closed port). A run must still get its
// script through and its output back.
import { afterEach, describe, expect, it } from 'vitest';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { guestRun } from '../../server/lab/guest-shell.js';

interface FakePort {
  socket: string;
  close: () => Promise<void>;
}

/** Each connection: bytes written in its first `deafMs` are dropped, then a fresh sh reads the rest. */
async function fakePort(deafMs: number): Promise<FakePort> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'bootfarm-guest-shell-'));
  const socket = path.join(dir, 'port');
  const shells = new Set<ReturnType<typeof spawn>>();
  const server = net.createServer((conn) => {
    let shell: ReturnType<typeof spawn> | undefined;
    conn.on('data', (chunk: Buffer) => {
      if (shell?.stdin?.writable) shell.stdin.write(chunk);
    });
    conn.on('error', () => undefined);
    conn.on('close', () => shell?.stdin?.end());
    setTimeout(() => {
      if (conn.destroyed) return;
      shell = spawn('sh', [], { stdio: ['pipe', 'pipe', 'pipe'] });
      shells.add(shell);
      shell.on('exit', () => shells.delete(shell as ReturnType<typeof spawn>));
      shell.stdin?.on('error', () => undefined);
      shell.stdout?.on('data', (b: Buffer) => conn.writable && conn.write(b));
      shell.stderr?.on('data', (b: Buffer) => conn.writable && conn.write(b));
    }, deafMs);
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  return {
    socket,
    close: async () => {
      for (const s of shells) s.kill('SIGKILL');
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe('lab guest shell channel', () => {
  let port: FakePort | undefined;
  afterEach(async () => {
    await port?.close();
    port = undefined;
  });

  it('runs a script and returns its output and exit status, even when the port drops what came before its shell opened', async () => {
    port = await fakePort(700);
    const r = await guestRun(port.socket, 'echo "hello $((40 + 2))"\nexit 3', 15_000);
    expect(r).toEqual({ code: 3, output: 'hello 42\n' });
  });

  it('runs one script after another on fresh connections, each output its own', async () => {
    port = await fakePort(300);
    const a = await guestRun(port.socket, 'echo first', 15_000);
    const b = await guestRun(port.socket, 'echo second; false', 15_000);
    expect(a).toEqual({ code: 0, output: 'first\n' });
    expect(b).toEqual({ code: 1, output: 'second\n' });
  });

  it('says the shell never answered when nothing reads the port', async () => {
    port = await fakePort(60_000);
    await expect(guestRun(port.socket, 'echo never', 2500)).rejects.toThrow(/within 2.5 s \(the shell never answered a ping\)/);
  });
});
