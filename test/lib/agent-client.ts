// curl as a node's boot firmware and agent would ask bootfarm, from inside a
// test namespace: the node's boot script (iPXE, over HTTP) and the one-time
// nonce its kernel command line carries, then the agent routes.
import type { LabHost, NetLab } from '../../server/lab/netlab.js';

export interface CurlAnswer {
  status: number;
  body: string;
}

export class AgentClient {
  /** Every body received, for scans of what left bootfarm. */
  readonly responses: string[] = [];

  constructor(
    private readonly lab: NetLab,
    readonly base: string,
  ) {}

  async curl(host: LabHost, url: string, extra: string[] = []): Promise<CurlAnswer> {
    const r = await this.lab.exec(host.ns, 'curl', ['-sS', '--max-time', '15', '-o', '-', '-w', '\n%{http_code}', ...extra, url]);
    const lines = r.stdout.trimEnd().split('\n');
    const status = Number(lines.pop());
    const body = lines.join('\n');
    this.responses.push(body);
    return { status, body };
  }

  /** The node's iPXE script as `host` gets it, and the nonce on its kernel line (undefined when refused). */
  async bootScript(host: LabHost, mac: string): Promise<CurlAnswer & { nonce: string | undefined }> {
    const answer = await this.curl(host, `${this.base}/boot/${mac.replace(/:/g, '-')}.ipxe`);
    return { ...answer, nonce: / bootfarm\.nonce=([A-Za-z0-9_-]+)/.exec(answer.body)?.[1] };
  }

  /** GET /config presenting a nonce (as the agent's first fetch does) or a secret. */
  config(host: LabHost, mac: string, credential: { nonce?: string; secret?: string } = {}): Promise<CurlAnswer> {
    const headers: string[] = [];
    if (credential.nonce !== undefined) headers.push('-H', `X-Bootfarm-Nonce: ${credential.nonce}`);
    if (credential.secret !== undefined) headers.push('-H', `Authorization: Bearer ${credential.secret}`);
    return this.curl(host, `${this.base}/agent/v1/${mac}/config`, headers);
  }

  join(host: LabHost, mac: string, secret: string | undefined): Promise<CurlAnswer> {
    return this.curl(host, `${this.base}/agent/v1/${mac}/join`, secret === undefined ? [] : ['-H', `Authorization: Bearer ${secret}`]);
  }

  /** A boot as the node makes it: its boot script, then its configuration for the script's nonce. The secret, and the nonce. */
  async boot(host: LabHost, mac: string): Promise<{ nonce: string; secret: string; config: CurlAnswer }> {
    const script = await this.bootScript(host, mac);
    if (script.status !== 200 || script.nonce === undefined) throw new Error(`boot script for ${mac}: ${script.status} ${script.body}`);
    const config = await this.config(host, mac, { nonce: script.nonce });
    const secret = shellVar(config.body, 'BOOTFARM_SECRET');
    if (config.status !== 200 || secret === undefined) throw new Error(`configuration for ${mac}: ${config.status} ${config.body}`);
    return { nonce: script.nonce, secret, config };
  }
}

/** The value of a `NAME='value'` line of the agent's configuration. */
export function shellVar(text: string, name: string): string | undefined {
  return new RegExp(`^${name}='([^']*)'$`, 'm').exec(text)?.[1];
}
