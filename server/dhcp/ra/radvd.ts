// IPv6 router advertisements on the boot segment, sent by radvd (Node cannot send
// ICMPv6). iPXE configures IPv4 and IPv6 together and waits ~16 s for a router
// advertisement before it uses its DHCP answer; an RA with no prefix, no flags
// and router lifetime 0 ends that wait (iPXE's IPv6 configurator completes on any
// RA without the managed/other flags) and changes nothing for other hosts: no
// addresses, no default route. dnsmasq's `enable-ra` does the same job.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import type { Logger } from 'pino';
import { SetupError } from '../../errors.js';

function radvdConfig(interfaceName: string): string {
  return [
    `# written by bootfarm: advertisements for iPXE's IPv6 configuration, nothing else`,
    `interface ${interfaceName} {`,
    '  AdvSendAdvert on;',
    '  MinRtrAdvInterval 3;',
    '  MaxRtrAdvInterval 10;',
    '  AdvDefaultLifetime 0;',
    '  AdvManagedFlag off;',
    '  AdvOtherConfigFlag off;',
    '};',
    '',
  ].join('\n');
}

export class RouterAdvertiser {
  private child: ResultPromise | undefined;
  private stopping = false;

  constructor(
    private readonly interfaceName: string,
    private readonly stateDir: string,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    // radvd starts anyway but sends nothing without IPv6 (Docker turns it off in containers).
    let disabled = '';
    try {
      disabled = readFileSync(`/proc/sys/net/ipv6/conf/${this.interfaceName}/disable_ipv6`, 'utf8').trim();
    } catch {
      disabled = '1';
    }
    if (disabled !== '0') {
      this.logger.warn(
        { interface: this.interfaceName },
        `IPv6 is off on ${this.interfaceName}: no router advertisements can be sent, and iPXE will wait ~16 s for IPv6 (sysctl net.ipv6.conf.${this.interfaceName}.disable_ipv6=0)`,
      );
    }
    const dir = path.join(this.stateDir, 'radvd');
    mkdirSync(dir, { recursive: true });
    const conf = path.join(dir, 'radvd.conf');
    writeFileSync(conf, radvdConfig(this.interfaceName));
    const child = execa('radvd', ['--nodaemon', '--logmethod', 'stderr', '--config', conf, '--pidfile', path.join(dir, 'radvd.pid')], {
      reject: false,
      all: true,
      buffer: false,
    });
    this.child = child;
    child.all?.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n').filter(Boolean))
        this.logger.debug({ radvd: line.replace(/^\[[^\]]*\] /, '') }, 'radvd');
    });
    // A missing binary or a refused configuration shows at once; give it that moment.
    const early = await Promise.race([
      child.then((r) => r),
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 500)),
    ]);
    if (early) {
      const missing = (early as { code?: string }).code === 'ENOENT' || /ENOENT/.test(String((early as { message?: string }).message));
      throw new SetupError(
        missing
          ? 'dhcp.routerAdvertisements needs radvd (apt-get install radvd)'
          : `radvd stopped at start (exit ${String((early as { exitCode?: number }).exitCode)}); dhcp.routerAdvertisements needs IPv6 on ${this.interfaceName}`,
      );
    }
    void child.then((r) => {
      if (!this.stopping) this.logger.error({ exitCode: r.exitCode }, 'radvd stopped: iPXE clients will wait ~16 s for IPv6 again');
    });
    this.logger.info({ interface: this.interfaceName }, 'router advertisements on (radvd)');
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (!this.child) return;
    this.child.kill('SIGTERM');
    await this.child.catch(() => undefined);
    this.child = undefined;
  }
}
