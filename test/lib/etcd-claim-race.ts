// Two claimers (as two bootfarm instances would be) race for the same addresses
// in etcd: for each address, both claim it at once for different clients. Prints
// one JSON line: per address, which of the two got ok. Runs in a lab namespace,
// where the test's etcd members are.
// Usage: node --import tsx test/lib/etcd-claim-race.ts <endpoints,comma,separated> <prefix> <count>
import { pino } from 'pino';
import { EtcdLeaseClaims } from '../../server/store/etcd-lease-claims.js';

const [endpoints = '', prefix = '/race', count = '20'] = process.argv.slice(2);
const logger = pino({ level: 'silent' });
// A generous timeout: this measures who wins, not how fast, on a shared loaded machine.
const open = () => EtcdLeaseClaims.open({ endpoints: endpoints.split(','), prefix, logger, claimTimeoutMs: 5000 });
const [a, b] = await Promise.all([open(), open()]);
const now = Date.now();
const claimFor = (claims: EtcdLeaseClaims, client: string, ip: string) =>
  claims.claim('10.9.0.0/24', ip, { key: client, mac: client, expiresAt: now + 60_000, instance: client }, now).then((r) => r.ok);
const ips = Array.from({ length: Number(count) }, (_, i) => `10.9.0.${100 + i}`);
const results = await Promise.all(
  ips.map(async (ip) => {
    const [okA, okB] = await Promise.all([claimFor(a, 'client-a', ip), claimFor(b, 'client-b', ip)]);
    return { ip, a: okA, b: okB };
  }),
);
process.stdout.write(`${JSON.stringify(results)}\n`);
await Promise.all([a.stop(), b.stop()]);
