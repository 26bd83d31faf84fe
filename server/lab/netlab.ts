// A throw-away L2 segment for tests: a "switch" namespace holding a bridge, and
// host namespaces each wired to it by a veth pair. Traffic never leaves these
// namespaces. Everything is deleted by destroy(), which tests call in afterAll.
import { randomBytes } from 'node:crypto';
import { Background, run, runOk } from './proc.js';

export interface LabHost {
  /** Network namespace name. */
  ns: string;
  /** The host's interface inside its namespace. */
  ifname: string;
  mac: string;
  address: string | undefined;
}

export class NetLab {
  readonly id: string;
  readonly switchNs: string;
  readonly hosts = new Map<string, LabHost>();
  private readonly namespaces: string[] = [];
  private readonly background: Background[] = [];
  private counter = 0;

  private constructor(id: string) {
    this.id = id;
    this.switchNs = `${id}-sw`;
  }

  /** Creates the switch namespace with bridge br0. `tag` keeps names readable in `ip netns`. */
  static async create(tag: string): Promise<NetLab> {
    const lab = new NetLab(`bf${tag}${randomBytes(2).toString('hex')}`);
    await lab.addNamespace(lab.switchNs);
    await lab.ip(lab.switchNs, 'link', 'add', 'br0', 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0');
    await lab.ip(lab.switchNs, 'link', 'set', 'br0', 'up');
    return lab;
  }

  private async addNamespace(ns: string): Promise<void> {
    await runOk('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    await this.ip(ns, 'link', 'set', 'lo', 'up');
  }

  ip(ns: string, ...args: string[]): Promise<string> {
    return runOk('ip', ['-n', ns, ...args]);
  }

  /** Adds a host namespace on the bridge. `address` is CIDR (e.g. 10.9.0.1/24) or none (a DHCP client). */
  async addHost(name: string, options: { address?: string; mac?: string } = {}): Promise<LabHost> {
    const ns = `${this.id}-${name}`;
    await this.addNamespace(ns);
    const n = this.counter++;
    const inner = `${this.id}h${n}`;
    const outer = `${this.id}p${n}`;
    await runOk('ip', ['link', 'add', inner, 'type', 'veth', 'peer', 'name', outer]);
    await runOk('ip', ['link', 'set', outer, 'netns', this.switchNs]);
    await runOk('ip', ['link', 'set', inner, 'netns', ns]);
    await this.ip(ns, 'link', 'set', inner, 'name', 'eth0');
    if (options.mac) await this.ip(ns, 'link', 'set', 'eth0', 'address', options.mac);
    if (options.address) await this.ip(ns, 'addr', 'add', options.address, 'dev', 'eth0');
    await this.ip(ns, 'link', 'set', 'eth0', 'up');
    await this.ip(this.switchNs, 'link', 'set', outer, 'master', 'br0');
    await this.ip(this.switchNs, 'link', 'set', outer, 'up');
    const mac = (JSON.parse(await this.ip(ns, '-j', 'link', 'show', 'eth0')) as [{ address: string }])[0].address;
    const host = { ns, ifname: 'eth0', mac, address: options.address?.split('/')[0] };
    this.hosts.set(name, host);
    return host;
  }

  /** Adds a second interface to an existing host on a separate point-to-point link to `peer` (for relays). */
  async link(a: LabHost, aAddress: string, b: LabHost, bAddress: string, ifname: string): Promise<void> {
    const n = this.counter++;
    const x = `${this.id}x${n}`;
    const y = `${this.id}y${n}`;
    await runOk('ip', ['link', 'add', x, 'type', 'veth', 'peer', 'name', y]);
    await runOk('ip', ['link', 'set', x, 'netns', a.ns]);
    await runOk('ip', ['link', 'set', y, 'netns', b.ns]);
    await this.ip(a.ns, 'link', 'set', x, 'name', ifname);
    await this.ip(b.ns, 'link', 'set', y, 'name', ifname);
    await this.ip(a.ns, 'addr', 'add', aAddress, 'dev', ifname);
    await this.ip(b.ns, 'addr', 'add', bAddress, 'dev', ifname);
    await this.ip(a.ns, 'link', 'set', ifname, 'up');
    await this.ip(b.ns, 'link', 'set', ifname, 'up');
  }

  /** Adds a tap on the bridge for a QEMU guest (QEMU must run in the switch namespace). */
  async addTap(): Promise<string> {
    const tap = `${this.id}t${this.counter++}`;
    await this.ip(this.switchNs, 'tuntap', 'add', 'dev', tap, 'mode', 'tap');
    await this.ip(this.switchNs, 'link', 'set', tap, 'master', 'br0');
    await this.ip(this.switchNs, 'link', 'set', tap, 'up');
    return tap;
  }

  exec(ns: string, cmd: string, args: string[], timeoutMs = 60_000) {
    return run('ip', ['netns', 'exec', ns, cmd, ...args], timeoutMs);
  }

  /** Starts a background process in a namespace; destroy() stops it by PID if the test did not. */
  spawn(ns: string, cmd: string, args: string[], label = cmd): Background {
    const bg = Background.start('ip', ['netns', 'exec', ns, cmd, ...args], label);
    this.background.push(bg);
    return bg;
  }

  async destroy(): Promise<void> {
    for (const bg of this.background) await bg.stop('SIGTERM', 3000);
    for (const ns of this.namespaces.reverse()) await run('ip', ['netns', 'del', ns]);
  }
}
