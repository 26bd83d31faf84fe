// dhcp.routerAdvertisements: bootfarm runs radvd on the boot segment, and a real
// IPv6 host (ndisc6's rdisc6, soliciting like iPXE does) gets an advertisement that
// configures nothing: no prefix, no managed/other flags, router lifetime 0.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';

describe('IPv6 router advertisements for iPXE', () => {
  let lab: NetLab;
  let client: LabHost;
  let server: BootfarmProcess;

  beforeAll(async () => {
    lab = await NetLab.create('ra');
    const srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    client = await lab.addHost('cli');
    server = await startBootfarm(lab, srv.ns, {
      server: { address: '10.9.0.1' },
      dhcp: {
        mode: 'full',
        interface: 'eth0',
        routerAdvertisements: true,
        subnets: [{ cidr: '10.9.0.0/24', range: ['10.9.0.100', '10.9.0.150'] }],
      },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await lab?.destroy();
  });

  it('answers a router solicitation with an advertisement that configures nothing', async () => {
    // Link-local addresses need DAD to finish before rdisc6 can send.
    let out = '';
    for (let i = 0; i < 10 && !out.includes('Router lifetime'); i++) {
      out = (await lab.exec(client.ns, 'rdisc6', ['-1', '-w', '2000', 'eth0'])).stdout;
    }
    expect(out).toMatch(/Stateful address conf\.\s*:\s*No/);
    expect(out).toMatch(/Stateful other conf\.\s*:\s*No/);
    expect(out).toMatch(/Router lifetime\s*:\s*0 \(0x00000000\) seconds/);
    expect(out).not.toMatch(/Prefix\s*:/);
    expect(server.logs().some((l) => l.msg === 'router advertisements on (radvd)')).toBe(true);
  });
});
