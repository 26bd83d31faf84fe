// ProxyDHCP beside a site DHCP server (stock dnsmasq): real firmware gets its
// address from dnsmasq and its boot file from bootfarm. UEFI takes the port-4011
// path (no option 43 in the proxy offer), BIOS-era iPXE uses the offer directly.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFirmwareLab, firstFetch, type FirmwareLab } from './firmware-guests.js';
import type { Background } from '../../server/lab/proc.js';

const GUEST_TIMEOUT = 150_000;
const DNSMASQ_RANGE = /^10\.9\.0\.(5\d|[6-9]\d)$/;

describe('QEMU firmware with bootfarm as proxyDHCP beside dnsmasq', () => {
  let fl: FirmwareLab & { site?: Background };

  beforeAll(async () => {
    fl = await createFirmwareLab('px', { mode: 'proxy' }, true);
  });
  afterAll(async () => {
    await fl?.lab.destroy();
  });

  it(
    'SeaBIOS+iPXE: address from dnsmasq, script URL from bootfarm',
    async () => {
      const mac = '52:54:00:bb:00:01';
      const fetch = await firstFetch(fl, 'seabios', mac, GUEST_TIMEOUT);
      expect(fetch).toMatchObject({ proto: 'http', path: `/boot/${mac.replaceAll(':', '-')}.ipxe` });
      expect(fetch.from).toMatch(DNSMASQ_RANGE);
      await fl.site?.waitFor((l) => l.includes('DHCPACK') && l.includes(mac), 5_000, 'dnsmasq ACK');
      const offer = await fl.bootfarm.waitForLog((l) => l.mac === mac && l.outcome === 'proxy-offer', 5_000, 'the proxy offer');
      expect(offer).toMatchObject({ ipxe: true });
    },
    GUEST_TIMEOUT + 30_000,
  );

  it(
    'OVMF UEFI: address from dnsmasq, boot file from bootfarm through port 4011',
    async () => {
      const mac = '52:54:00:bb:00:02';
      const fetch = await firstFetch(fl, 'ovmf', mac, GUEST_TIMEOUT);
      expect(fetch).toMatchObject({ proto: 'tftp', file: 'ipxe.efi' });
      expect(fetch.from).toMatch(DNSMASQ_RANGE);
      await fl.bootfarm.waitForLog((l) => l.mac === mac && l.outcome === 'proxy-offer', 5_000, 'the proxy offer');
      const ack = await fl.bootfarm.waitForLog(
        (l) => l.mac === mac && l.listener === 'boot-server' && l.outcome === 'boot-server-ack',
        5_000,
        'the port-4011 ACK',
      );
      expect(ack).toMatchObject({ firmware: 'uefi', bootFile: 'ipxe.efi' });
    },
    GUEST_TIMEOUT + 30_000,
  );
});
