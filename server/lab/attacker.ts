// The lab's attacker (`bootfarm lab run --attack`): a machine on the lab segment
// with an address of its own, trying what issue 11 lists against every QEMU
// node while it boots, and after it joined:
// - forged DHCP REQUESTs with the node's MAC and a free pool address in option
//   50, SELECTING with no OFFER before them (server/lab/forged-dhcp-main.ts);
// - from hand-set addresses (its own, and that claimed one), racing the node all
//   through its boot: the node's boot script, /config, /join (a made-up secret);
// - once the node joined: the nonce it sniffed (read here off the node's serial
//   console, where Linux prints its command line) replayed to /config.
// Every answer must be a refusal carrying no nonce, secret or token; the node's
// lease must stay its own; the replay must be on the node's timeline as an alarm.
import type { NetLab, LabHost } from './netlab.js';
import type { TimelineEvent } from './timeline.js';

const ATTACKER_ADDRESS = '10.9.0.66';
/**
 * A free address inside the lab's pool (10.9.0.100-199) that the forged REQUESTs
 * claim for the node's MAC, and that the attacker also gives itself: were it
 * bound to the node, the attacker would be "the node" from there.
 */
const CLAIMED_ADDRESS = '10.9.0.177';
const ATTACKER_MAC = '52:54:00:ee:ee:01';

export interface AttackReport {
  /** Requests the attacker made for this node, and how bootfarm answered each kind. */
  probes: number;
  statuses: Record<string, number[]>;
  forgedDhcp: { sent: number; sendErrors: number };
  /** security.* events on the node's timeline after the replay. */
  alarms: string[];
  failures: string[];
}

/** What a refusal must never contain. */
const LEAKS: Array<[RegExp, string]> = [
  [/BOOTFARM_SECRET/, 'a phone-home secret'],
  [/bootfarm\.nonce=/, 'a boot nonce'],
  [/JoinConfiguration|[a-z0-9]{6}\.[a-z0-9]{16}/, 'a join configuration or token'],
];

export class LabAttacker {
  private constructor(
    private readonly net: NetLab,
    private readonly host: LabHost,
    private readonly opts: {
      server: string;
      http: string;
      apiToken: string;
      forgedDhcp: { execPath: string; args: string[] };
      log: (line: string) => void;
    },
  ) {}

  static async create(net: NetLab, opts: LabAttacker['opts']): Promise<LabAttacker> {
    const host = await net.addHost('attacker', { address: `${ATTACKER_ADDRESS}/24`, mac: ATTACKER_MAC });
    // Linux sends to 255.255.255.255 only along a route.
    await net.ip(host.ns, 'route', 'add', 'default', 'dev', 'eth0');
    await net.ip(host.ns, 'addr', 'add', `${CLAIMED_ADDRESS}/24`, 'dev', 'eth0');
    return new LabAttacker(net, host, opts);
  }

  private async curl(url: string, headers: string[] = [], from = ATTACKER_ADDRESS): Promise<{ status: number; body: string }> {
    const r = await this.net.exec(
      this.host.ns,
      'curl',
      ['-sS', '--max-time', '10', '--interface', from, '-o', '-', '-w', '\n%{http_code}', ...headers, url],
      20_000,
    );
    const lines = r.stdout.trimEnd().split('\n');
    return { status: Number(lines.pop()), body: lines.join('\n') };
  }

  private record(report: AttackReport, what: string, answer: { status: number; body: string }): void {
    report.probes++;
    (report.statuses[what] ??= []).push(answer.status);
    if (answer.status >= 200 && answer.status < 300) report.failures.push(`${what}: answered ${answer.status} to the attacker`);
    for (const [pattern, name] of LEAKS) if (pattern.test(answer.body)) report.failures.push(`${what}: the attacker got ${name}`);
  }

  /** Until `stop` is aborted: forged DHCP in the background, and the node's script and agent routes asked for about once a second. */
  async duringBoot(node: { mac: string; arch: string }, stop: AbortSignal): Promise<AttackReport> {
    const report: AttackReport = { probes: 0, statuses: {}, forgedDhcp: { sent: 0, sendErrors: 0 }, alarms: [], failures: [] };
    const hyphen = node.mac.replace(/:/g, '-');
    const scripts = node.arch === 'arm64' ? [`grub/grub.cfg-01-${hyphen}`, `boot/${hyphen}.ipxe`] : [`boot/${hyphen}.ipxe`];
    const forger = this.net.spawn(
      this.host.ns,
      this.opts.forgedDhcp.execPath,
      [...this.opts.forgedDhcp.args, this.opts.server, node.mac, CLAIMED_ADDRESS, '30', '2000'],
      'forged-dhcp',
    );
    try {
      for (let round = 0; !stop.aborted; round++) {
        const from = round % 2 === 0 ? ATTACKER_ADDRESS : CLAIMED_ADDRESS;
        for (const script of scripts)
          this.record(report, `boot script ${script}`, await this.curl(`${this.opts.http}/${script}`, [], from));
        this.record(report, '/config', await this.curl(`${this.opts.http}/agent/v1/${node.mac}/config`, [], from));
        this.record(
          report,
          '/join',
          await this.curl(`${this.opts.http}/agent/v1/${node.mac}/join`, ['-H', `Authorization: Bearer ${'A'.repeat(32)}`], from),
        );
        await new Promise((r) => setTimeout(r, 1000));
      }
    } finally {
      const line = forger.lines.find((l) => l.startsWith('{"sent"'));
      if (line) report.forgedDhcp = JSON.parse(line) as AttackReport['forgedDhcp'];
      await forger.stop('SIGTERM', 2000);
    }
    return report;
  }

  /**
   * After the node joined: replays the nonce off its console, then checks the
   * timeline recorded it and the node's lease is still the node's.
   */
  async afterJoin(
    node: { mac: string },
    report: AttackReport,
    consoleText: string,
    events: () => Promise<TimelineEvent[]>,
  ): Promise<AttackReport> {
    const nonce = /\bbootfarm\.nonce=([A-Za-z0-9_-]+)/.exec(consoleText)?.[1];
    if (!nonce) {
      report.failures.push("no bootfarm.nonce on the node's console: nothing to replay");
      return report;
    }
    const before = new Set((await events()).map((e) => `${e.at} ${e.type}`));
    this.record(
      report,
      'replayed nonce',
      await this.curl(`${this.opts.http}/agent/v1/${node.mac}/config`, ['-H', `X-Bootfarm-Nonce: ${nonce}`]),
    );
    for (let tries = 0; tries < 10 && report.alarms.length === 0; tries++) {
      await new Promise((r) => setTimeout(r, 500));
      report.alarms = (await events()).filter((e) => e.type.startsWith('security.') && !before.has(`${e.at} ${e.type}`)).map((e) => e.type);
    }
    if (!report.alarms.includes('security.from-another-address'))
      report.failures.push(`the replayed nonce left no alarm on the node's timeline (saw: ${report.alarms.join(', ') || 'none'})`);
    const leases = await this.curl(`${this.opts.http}/api/v1/leases`, ['-H', `Authorization: Bearer ${this.opts.apiToken}`]);
    const claimed = (JSON.parse(leases.body) as { leases: Array<{ ip: string; mac: string; state: string }> }).leases.filter(
      (l) => l.ip === CLAIMED_ADDRESS || l.ip === ATTACKER_ADDRESS,
    );
    if (claimed.length > 0) report.failures.push(`the forged REQUESTs got a lease: ${JSON.stringify(claimed)}`);
    if (report.forgedDhcp.sent === 0) report.failures.push('no forged DHCP REQUEST was sent');
    return report;
  }
}
