// The stateful NBD fuzzer (test/lib/nbd-fuzzer.ts) against the built-in server,
// from an admitted node address and from an address the policy refuses, at once:
// at least 100,000 messages over many connections, with the default limits. The
// server must stay up, keep its memory bounded, and afterwards still serve the
// export byte for byte to nbdinfo and nbdcopy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { nodeArgs, REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const URI = 'nbd://10.9.0.1:10809';
const FUZZER = path.join(REPO_ROOT, 'test/lib/nbd-fuzzer.ts');

interface FuzzResult {
  messages: number;
  connections: number;
  noGreeting: number;
  closedByServer: number;
  fixedPortGreeted: number;
}

describe('NBD under a stateful fuzzer', () => {
  let lab: NetLab;
  let server: BootfarmProcess;
  let client: LabHost;
  let stranger: LabHost;
  let disk: Buffer;

  beforeAll(async () => {
    const work = mkdtempSync(path.join(tmpdir(), 'bootfarm-nbd-fuzz-'));
    disk = randomBytes(8 * 1024 * 1024);
    writeFileSync(path.join(work, 'disk.img'), disk);
    lab = await NetLab.create('nf');
    const srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    client = await lab.addHost('cli', { address: '10.9.0.2/24' });
    stranger = await lab.addHost('str', { address: '10.9.0.3/24' });
    server = await startBootfarm(lab, srv.ns, {
      server: { address: '10.9.0.1' },
      nbd: { port: 10809, exports: [{ name: 'disk', file: path.join(work, 'disk.img') }] },
      images: { dir: path.join(work, 'images') },
      // 10.9.0.2 is a node's address; 10.9.0.3 holds no lease and is nobody's.
      nodes: [{ mac: '52:54:00:00:00:01', hostname: 'node-1', arch: 'amd64', ip: '10.9.0.2' }],
    });
  }, 120_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  const status = (field: 'VmRSS' | 'VmHWM') =>
    Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${server.bg.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  const fuzz = (host: LabHost, messages: number, seed: number) =>
    lab.exec(host.ns, process.execPath, nodeArgs(FUZZER, ['10.9.0.1', '10809', 'disk', String(messages), '6', String(seed)]), 180_000);

  it('takes 100,000+ hostile messages from an admitted and a refused address, stays up with bounded memory, and still serves the export exactly', async () => {
    const baseline = status('VmRSS');
    let peak = baseline;
    let running = true;
    const sampler = (async () => {
      while (running) {
        peak = Math.max(peak, status('VmRSS'));
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const [admitted, refused] = await Promise.all([fuzz(client, 70_000, 11), fuzz(stranger, 40_000, 12)]);
    running = false;
    await sampler;
    expect(admitted.code, admitted.stderr).toBe(0);
    expect(refused.code, refused.stderr).toBe(0);
    const a = JSON.parse(admitted.stdout) as FuzzResult;
    const r = JSON.parse(refused.stdout) as FuzzResult;
    const hwm = status('VmHWM');
    const figures = `messages ${a.messages + r.messages} (admitted ${a.messages} over ${a.connections} connections, refused ${r.messages} over ${r.connections}); RSS baseline ${baseline.toFixed(0)} MiB, peak sampled ${peak.toFixed(0)} MiB, VmHWM ${hwm.toFixed(0)} MiB`;
    console.log(`nbd fuzz: ${figures}; admitted ${admitted.stdout.trim()}; refused ${refused.stdout.trim()}`);
    expect(a.messages + r.messages).toBeGreaterThanOrEqual(100_000);
    // Some connections came from fixed source ports (1, 68, 69, 1023, 65535) and were served.
    expect(a.fixedPortGreeted + r.fixedPortGreeted).toBeGreaterThan(0);
    expect(server.bg.child.exitCode, 'the server is still running').toBeNull();
    expect(peak, figures).toBeLessThan(baseline + 128);

    const info = await lab.exec(client.ns, 'nbdinfo', ['--json', `${URI}/disk`]);
    expect(info.code, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout)).toMatchObject({ exports: [{ 'export-name': 'disk', 'export-size': disk.length, is_read_only: true }] });
    const copy = await lab.exec(client.ns, 'sh', ['-c', `nbdcopy ${URI}/disk - | sha256sum`], 60_000);
    expect(copy.code, copy.stderr).toBe(0);
    expect(copy.stdout.split(' ')[0]).toBe(sha(disk));
    // Problems are logged at a bounded rate, not one line per bad message.
    const warnings = server.logs().filter((l) => l.level >= 40).length;
    expect(warnings, `${warnings} warning lines`).toBeLessThan(200);
  }, 240_000);
});
