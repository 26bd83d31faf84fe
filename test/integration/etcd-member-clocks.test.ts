// etcd's clock is what a majority of its members says (docs/design.md
// "Instances and their clocks"; quorumReference in server/store/clock-skew.ts):
// one member with a wrong clock, even the first one listed, neither stops an
// instance whose clock is right nor clears one whose clock is wrong, and the
// disagreement is logged naming the member. A member listed twice (two endpoints
// of one member) has one vote, and the majority is of the cluster's members.
//
// A real three-member cluster on loopback. The wrong clock is a member's /health
// Date header moved by a front (below) that the registry reaches the member
// through: faketime cannot move etcd's clock (Go reads the time through the
// vDSO, never libc's clock_gettime, which libfaketime wraps), and a time
// namespace offsets only the monotonic and boot clocks. The front passes gRPC
// (HTTP/2) through byte for byte; only HTTP/1.1 answers (/health) get the moved
// Date. "This clock wrong" is played by moving the other members the other way:
// the registry compares offsets only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createServer as createHttpServer, request } from 'node:http';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { Writable } from 'node:stream';
import { Etcd3 } from 'etcd3';
import { pino } from 'pino';
import { InstanceRegistry } from '../../server/store/instance-registry.js';
import type { SkewVerdict } from '../../server/store/clock-skew.js';
import { startLoopbackCluster, type EtcdCluster } from '../lib/etcd.js';
import { waitUntil } from '../lib/wait.js';

const H2_PREFACE = 'PRI * HTTP/2.0';

/** A front for one member: gRPC piped as is, /health answered with the member's answer and a Date `shiftMs` off. */
interface ClockFront {
  url: string;
  shiftMs: number;
  close(): Promise<void>;
}

async function clockFront(member: string): Promise<ClockFront> {
  const target = new URL(member);
  const port = Number(target.port);
  const front = { shiftMs: 0 };
  const http = createHttpServer((req, res) => {
    const upstream = request({ host: '127.0.0.1', port, path: req.url, method: req.method }, (answer) => {
      const headers = { ...answer.headers, date: new Date(Date.now() + front.shiftMs).toUTCString() };
      res.writeHead(answer.statusCode ?? 502, headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  const server: Server = createServer((socket) => {
    socket.once('data', (first: Buffer) => {
      socket.pause();
      if (first.toString('latin1').startsWith(H2_PREFACE)) {
        const up = connect(port, '127.0.0.1', () => {
          up.write(first);
          socket.pipe(up).pipe(socket);
          socket.resume();
        });
        const end = () => {
          up.destroy();
          socket.destroy();
        };
        up.on('error', end);
        socket.on('error', end);
        socket.on('close', end);
      } else {
        socket.unshift(first);
        http.emit('connection', socket);
        socket.resume();
      }
    });
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(front, {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        http.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

const PEER_ID = '00000000-0000-4000-8000-0000000000e2';

describe("etcd's clock from a majority of its members", () => {
  let etcd: EtcdCluster;
  const fronts: ClockFront[] = [];
  let client: Etcd3 | undefined;
  let registry: InstanceRegistry | undefined;

  beforeAll(async () => {
    etcd = await startLoopbackCluster(3);
    for (const member of etcd.endpoints) fronts.push(await clockFront(member));
  });
  afterAll(async () => {
    await registry?.stop();
    client?.close();
    for (const f of fronts) await f.close();
    await etcd?.stop();
  });

  /** A peer 150 s ahead of this clock (beyond the stop limit for the whole test) under `prefix`; its etcd lease. */
  const putPeerAhead = async (prefix: string): Promise<string> => {
    const lease = (await etcd.ctl(['lease', 'grant', '300'])).match(/lease (\S+) granted/)?.[1] as string;
    const peer = {
      id: PEER_ID,
      hostname: 'peer',
      address: '10.9.0.2',
      version: 'test',
      clock: Date.now() + 150_000,
      startedAt: 0,
      interfaces: [],
      segments: [],
      images: [],
      skew: { stopped: false },
    };
    await etcd.ctl(['put', `${prefix}/instances/${PEER_ID}`, JSON.stringify(peer), `--lease=${lease}`]);
    return lease;
  };

  it('one member 90 s off, listed first: an instance with a right clock keeps allocating, one with a wrong clock stops', async () => {
    const prefix = `/clocks-${randomBytes(4).toString('hex')}`;
    const lease = await putPeerAhead(prefix);

    const [first, second, third] = fronts as [ClockFront, ClockFront, ClockFront];
    first.shiftMs = 90_000;
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
          done();
        },
      }),
    );
    let verdict: SkewVerdict | undefined;
    let verdicts = 0;
    client = new Etcd3({ hosts: fronts.map((f) => f.url) });
    registry = await InstanceRegistry.open({
      client,
      prefix,
      endpoints: fronts.map((f) => f.url),
      timeoutMs: 3000,
      logger,
      refreshMs: 300,
      onVerdict: (v) => {
        verdict = v;
        verdicts++;
      },
      self: () => ({
        id: '00000000-0000-4000-8000-0000000000e1',
        hostname: 'this',
        address: '10.9.0.1',
        version: 'test',
        startedAt: 0,
        interfaces: [],
        segments: [],
        images: [],
      }),
    });
    // This clock is right: the first member alone says otherwise, and does not stop it.
    expect(verdict?.worst?.id).toBe(PEER_ID);
    expect(verdict?.stop).toBe(false);
    expect(verdict?.referenceSkewMs).toBeLessThan(30_000);
    expect(registry.refusal()).toBeUndefined();
    await waitUntil(() => lines.some((l) => Array.isArray(l.members)), 30_000, 'the disagreement logged', 100);
    const disagreement = lines.find((l) => Array.isArray(l.members));
    expect(disagreement?.msg).toBe("etcd members' clocks disagree by more than 30 s: the majority's is used");
    expect((disagreement?.members as Array<{ endpoint: string }>).map((m) => m.endpoint)).toEqual([first.url]);

    // Now this clock is the wrong one (the majority 90 s from it, as the peer is),
    // and the first member alone agrees with it: that does not clear it.
    first.shiftMs = 0;
    second.shiftMs = 90_000;
    third.shiftMs = 90_000;
    const before = verdicts;
    await waitUntil(() => verdicts > before + 1 && verdict?.stop === true, 30_000, 'the instance stopped', 100);
    expect(verdict?.referenceSkewMs).toBeGreaterThan(85_000);
    expect(registry.refusal()).toMatchObject({ clockBad: true });
    await etcd.ctl(['lease', 'revoke', lease]);
  });
  it('one member listed twice (two endpoints of it) and agreeing with a wrong clock does not clear it', async () => {
    const prefix = `/clocks-${randomBytes(4).toString('hex')}`;
    const lease = await putPeerAhead(prefix);
    // A second front on the first member: another URL for it, as an address and a name would be.
    const twin = await clockFront(etcd.endpoints[0] as string);
    fronts.push(twin);
    const [first, second, third] = fronts as [ClockFront, ClockFront, ClockFront];
    // This clock is the wrong one: the first member (through both its URLs) agrees with it, the other two are 90 s away.
    first.shiftMs = 0;
    twin.shiftMs = 0;
    second.shiftMs = 90_000;
    third.shiftMs = 90_000;
    // Two of the three members listed, the first twice: three endpoints, two of them one member.
    const endpoints = [first.url, twin.url, second.url];
    const own = new Etcd3({ hosts: endpoints });
    let verdict: SkewVerdict | undefined;
    const wrong = await InstanceRegistry.open({
      client: own,
      prefix,
      endpoints,
      timeoutMs: 3000,
      logger: pino({ level: 'silent' }),
      refreshMs: 600_000,
      onVerdict: (v) => {
        verdict = v;
      },
      self: () => ({
        id: '00000000-0000-4000-8000-0000000000e3',
        hostname: 'this',
        address: '10.9.0.1',
        version: 'test',
        startedAt: 0,
        interfaces: [],
        segments: [],
        images: [],
      }),
    });
    try {
      // The majority of three members needs two: the first member's one vote and the second's 90 s.
      expect(verdict?.worst?.id).toBe(PEER_ID);
      expect(verdict?.referenceSkewMs).toBeGreaterThan(85_000);
      expect(verdict?.stop).toBe(true);
      expect(wrong.refusal()).toMatchObject({ clockBad: true, reason: 'clock skew beyond the limit' });
    } finally {
      await wrong.stop();
      own.close();
      await etcd.ctl(['lease', 'revoke', lease]);
    }
  });
});
