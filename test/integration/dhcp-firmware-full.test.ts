// Real firmware against full DHCP mode: QEMU SeaBIOS with its iPXE NIC ROM, and
// OVMF UEFI PXE, each boots far enough to fetch the file bootfarm named for it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFirmwareLab, firstFetch, type FirmwareLab } from './firmware-guests.js';

const GUEST_TIMEOUT = 150_000;

describe('QEMU firmware in full DHCP mode', () => {
  let fl: FirmwareLab;

  beforeAll(async () => {
    fl = await createFirmwareLab(
      'fw',
      {
        mode: 'full',
        subnets: [{ cidr: '10.9.0.0/24', range: ['10.9.0.100', '10.9.0.150'], router: '10.9.0.1', leaseSeconds: 600 }],
      },
      false,
    );
  });
  afterAll(async () => {
    await fl?.lab.destroy();
  });

  it(
    'SeaBIOS+iPXE is recognised as iPXE and fetches its per-node script over HTTP',
    async () => {
      const mac = '52:54:00:aa:00:01';
      const fetch = await firstFetch(fl, 'seabios', mac, GUEST_TIMEOUT);
      expect(fetch).toMatchObject({ proto: 'http', path: `/boot/${mac.replaceAll(':', '-')}.ipxe` });
      expect(fetch.from).toMatch(/^10\.9\.0\.1\d\d$/);
      const ack = await fl.bootfarm.waitForLog((l) => l.mac === mac && l.outcome === 'ack', 5_000, 'the ACK');
      expect(ack).toMatchObject({ ipxe: true, bootFile: `http://10.9.0.1:8080/boot/${mac.replaceAll(':', '-')}.ipxe` });
    },
    GUEST_TIMEOUT + 30_000,
  );

  it(
    'OVMF UEFI PXE (arch 7) fetches ipxe.efi over TFTP',
    async () => {
      const mac = '52:54:00:aa:00:02';
      const fetch = await firstFetch(fl, 'ovmf', mac, GUEST_TIMEOUT);
      expect(fetch).toMatchObject({ proto: 'tftp', file: 'ipxe.efi' });
      const offer = await fl.bootfarm.waitForLog((l) => l.mac === mac && l.outcome === 'offer', 5_000, 'the OFFER');
      expect(offer).toMatchObject({ firmware: 'uefi', ipxe: false, bootFile: 'ipxe.efi' });
    },
    GUEST_TIMEOUT + 30_000,
  );
});
