// Client identity -> boot plan -> reply, for each kind of firmware: captured
// packets of real clients, and a Raspberry Pi 4 DISCOVER built from the fields the
// Pi documentation gives (eeprom-bootloader.adoc, option 97), since no Pi is at hand.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { decodePacket, encodePacket, type DhcpPacket } from '../../server/dhcp/codec/packet.js';
import { readMessageType } from '../../server/dhcp/codec/readers.js';
import { identifyClient } from '../../server/dhcp/codec/identity.js';
import { planBoot, type BootPolicySettings } from '../../server/boot/policy.js';
import { parseConfig } from '../../server/config/load.js';
import type { ResolvedConfig } from '../../server/config/types.js';
import { FileStore } from '../../server/store/store.js';
import { LeasePool } from '../../server/dhcp/server/lease-pool.js';
import { FullModeHandler } from '../../server/dhcp/server/full-handler.js';
import { ProxyModeHandler } from '../../server/dhcp/server/proxy-handler.js';
import { BootServerHandler } from '../../server/dhcp/server/boot-server-handler.js';
import type { RequestContext } from '../../server/dhcp/server/context.js';
import { RASPBERRY_PI_OPTION_43 } from '../../server/dhcp/server/reply.js';
import { REPO_ROOT } from '../lib/bootfarm.js';
import { ipv4ToNumber } from '../../server/util/ipv4.js';

const FIXTURES = path.join(REPO_ROOT, 'test/fixtures/dhcp');
const settings: BootPolicySettings = {
  serverAddress: '10.9.0.1',
  httpPort: 8080,
  bootFiles: { bios: 'undionly.kpxe', uefiX64: 'ipxe.efi', uefiArm64: 'grub/arm64-efi/core.efi' },
};

function fixture(name: string): DhcpPacket {
  const r = decodePacket(readFileSync(path.join(FIXTURES, name)));
  if (!r.ok) throw new Error(r.reason);
  return r.packet;
}

/**
 * A Pi 4 EEPROM DISCOVER: option 60 PXEClient arch 0, option 93 = 0, and option 97
 * = 0x00 + "RPi4" + board revision (LE) + low 4 bytes of the MAC + serial (LE).
 */
export function raspberryPi4Discover(mac = 'dc:a6:32:01:02:03', serial = 0x1234abcd): Buffer {
  const macBytes = Buffer.from(mac.split(':').map((h) => parseInt(h, 16)));
  const id = Buffer.alloc(17);
  id.write('RPi4', 1, 'latin1');
  id.writeUInt32LE(0x00c03111, 5);
  macBytes.copy(id, 9, 2, 6);
  id.writeUInt32LE(serial, 13);
  const vendor = Buffer.from('PXEClient:Arch:00000:UNDI:002001', 'latin1');
  const prl = Buffer.from([1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135]);
  const options = Buffer.concat([
    Buffer.from([53, 1, 1]),
    Buffer.from([60, vendor.length]),
    vendor,
    Buffer.from([93, 2, 0, 0]),
    Buffer.from([97, 17]),
    id,
    Buffer.from([55, prl.length]),
    prl,
    Buffer.from([255]),
  ]);
  const buf = Buffer.alloc(240 + options.length);
  buf[0] = 1;
  buf[1] = 1;
  buf[2] = 6;
  buf.writeUInt32BE(0x26f30339, 4);
  buf.writeUInt16BE(0x8000, 10);
  macBytes.copy(buf, 28);
  buf.writeUInt32BE(0x63825363, 236);
  options.copy(buf, 240);
  return buf;
}

describe('client identity and boot plan', () => {
  const cases: Array<[string, object, object]> = [
    [
      'qemu-seabios-ipxe-discover.bin',
      { firmware: 'bios', cpu: 'x86', ipxe: { userClass: 'iPXE' } },
      { kind: 'file', ipxe: true, bootFile: 'http://10.9.0.1:8080/boot/52-54-00-12-34-01.ipxe' },
    ],
    [
      'ovmf-uefi-pxe-discover.bin',
      { firmware: 'uefi', cpu: 'x86_64', ipxe: undefined, archCode: 7 },
      { kind: 'file', ipxe: false, bootFile: 'ipxe.efi', vendorClass: 'PXEClient' },
    ],
    [
      'ovmf-uefi-http-discover.bin',
      { firmware: 'uefi-http', cpu: 'x86_64', ipxe: undefined, archCode: 16 },
      { kind: 'file', ipxe: false, bootFile: 'http://10.9.0.1:8080/ipxe.efi', vendorClass: 'HTTPClient' },
    ],
    ['ovmf-ipxe-efi-discover.bin', { firmware: 'uefi', cpu: 'x86_64', ipxe: { userClass: 'iPXE' } }, { kind: 'file', ipxe: true }],
    ['udhcpc-discover.bin', { firmware: 'unknown', wantsNetboot: false, ipxe: undefined }, { kind: 'none' }],
    ['dhclient-discover.bin', { firmware: 'unknown', wantsNetboot: false, ipxe: undefined }, { kind: 'none' }],
  ];
  it.each(cases)('%s', (file, identityShape, planShape) => {
    const identity = identifyClient(fixture(file));
    expect(identity).toMatchObject(identityShape);
    expect(planBoot(identity, undefined, settings)).toMatchObject(planShape);
  });

  it('recognises a Pi 4 by its option 97 FourCC and reads its serial and model', () => {
    const r = decodePacket(raspberryPi4Discover());
    if (!r.ok) throw new Error(r.reason);
    const identity = identifyClient(r.packet);
    expect(identity).toMatchObject({
      firmware: 'raspberry-pi',
      cpu: 'arm64',
      archCode: 0,
      raspberryPi: { model: 4, serial: '1234abcd', boardRevision: 0x00c03111 },
    });
    expect(planBoot(identity, undefined, settings)).toEqual({ kind: 'raspberry-pi', bootServer: '10.9.0.1', serial: '1234abcd', model: 4 });
  });

  it('recognises a Pi by OUI when option 97 is the legacy repeated serial, but not a Pi running UEFI', () => {
    const legacy = decodePacket(raspberryPi4Discover('b8:27:eb:00:00:01'));
    if (!legacy.ok) throw new Error(legacy.reason);
    const id = legacy.packet.options.get(97) as Buffer;
    for (let i = 1; i < 17; i += 4) id.writeUInt32LE(0x00abcdef, i);
    expect(identifyClient(legacy.packet)).toMatchObject({ firmware: 'raspberry-pi', raspberryPi: { model: 3, serial: '00abcdef' } });

    const uefiOnPi = fixture('ovmf-uefi-pxe-discover.bin');
    uefiOnPi.chaddr = Buffer.from('dca632aabbcc', 'hex');
    expect(identifyClient(uefiOnPi)).toMatchObject({ firmware: 'uefi', raspberryPi: undefined });
  });
});

describe('replies', () => {
  let dir: string;
  let store: FileStore;
  let config: ResolvedConfig;

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-replies-'));
    config = parseConfig(
      `
server: { address: 10.9.0.1, stateDir: ${dir} }
dhcp:
  mode: full
  subnets: [{ cidr: 10.9.0.0/24, range: [10.9.0.100, 10.9.0.200], router: 10.9.0.1, dns: [10.9.0.1], domain: lab, leaseSeconds: 3600 }]
nodes:
  - { mac: "dc:a6:32:01:02:03", hostname: pi-1, arch: arm64, piSerial: "1234abcd", piModel: 4, ip: 10.9.0.21 }
`,
      'test.yaml',
    );
    store = (await FileStore.open(dir, config.nodes)).store;
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function context(packet: DhcpPacket, listener: RequestContext['listener'] = 'dhcp'): RequestContext {
    const identity = identifyClient(packet);
    const node = store.nodeByMac(identity.mac);
    return {
      packet,
      messageType: readMessageType(packet.options) as number,
      identity,
      node,
      known: node !== undefined,
      plan: planBoot(identity, node, settings),
      source: { address: '10.9.0.150', port: 4011 },
      listener,
      now: Date.now(),
    };
  }
  const full = () => new FullModeHandler(new LeasePool(config.dhcp.subnets, store, 30_000, 600_000), '10.9.0.1');
  const wire = (p: DhcpPacket) => {
    const r = decodePacket(encodePacket(p).buffer);
    if (!r.ok) throw new Error(r.reason);
    return r.packet;
  };

  it('full mode: the Pi 4 gets its reserved address, option 43 "Raspberry Pi Boot", and 54/66/siaddr agreeing', async () => {
    const r = decodePacket(raspberryPi4Discover());
    if (!r.ok) throw new Error(r.reason);
    const result = await full().handle(context(r.packet));
    expect(result.outcome).toBe('offer');
    const offer = wire((result.replies[0] as { packet: DhcpPacket }).packet);
    expect(offer.yiaddr).toBe('10.9.0.21');
    expect(offer.siaddr).toBe('10.9.0.1');
    expect(offer.options.get(43)?.toString('hex')).toBe(
      '060103' + '0a0400505845' + '091700001452617370626572727920506920426f6f74202020' + 'ff',
    );
    expect(offer.options.get(43)).toEqual(RASPBERRY_PI_OPTION_43);
    expect(offer.options.get(54)?.toString('hex')).toBe('0a090001');
    expect(offer.options.get(66)?.toString()).toBe('10.9.0.1');
    expect(offer.options.get(60)?.toString()).toBe('PXEClient');
    expect(offer.options.get(12)?.toString()).toBe('pi-1');
    expect(offer.options.has(0)).toBe(false);
    // The Pi may never REQUEST: its offer is already a committed binding.
    expect(store.leases()).toMatchObject([{ ip: '10.9.0.21', mac: 'dc:a6:32:01:02:03', state: 'bound' }]);
  });

  it('full mode: BIOS iPXE gets its script URL in file and 67, the no-proxy-wait setting, and no option 60', async () => {
    const result = await full().handle(context(fixture('qemu-seabios-ipxe-discover.bin')));
    const offer = wire((result.replies[0] as { packet: DhcpPacket }).packet);
    expect(offer.file).toBe('http://10.9.0.1:8080/boot/52-54-00-12-34-01.ipxe');
    expect(offer.options.get(67)?.toString()).toBe(offer.file);
    expect(offer.options.get(175)?.toString('hex')).toBe('b00101');
    expect(offer.options.has(60)).toBe(false);
    expect(offer.options.get(51)?.readUInt32BE(0)).toBe(3600);
    expect(offer.options.get(58)?.readUInt32BE(0)).toBe(1800);
    expect(offer.options.get(59)?.readUInt32BE(0)).toBe(3150);
  });

  it('proxy mode: BIOS PXE gets discovery control 8; UEFI gets no option 43; both get yiaddr 0, 60 PXEClient and 97 echoed', async () => {
    const proxy = new ProxyModeHandler('10.9.0.1', 1000);
    const bios = fixture('qemu-seabios-ipxe-discover.bin');
    // The same DISCOVER as a plain (non-iPXE) BIOS PXE ROM would send it.
    bios.options.delete(77);
    bios.options.delete(175);
    const b = wire(((await proxy.handle(context(bios))).replies[0] as { packet: DhcpPacket }).packet);
    expect(b.yiaddr).toBe('0.0.0.0');
    expect(b.flags & 0x8000).toBe(0x8000);
    expect(b.file).toBe('undionly.kpxe');
    expect(b.options.get(43)?.toString('hex')).toBe('060108ff');
    expect(b.options.get(60)?.toString()).toBe('PXEClient');
    expect(b.options.get(97)).toEqual(bios.options.get(97));
    expect(b.options.has(51)).toBe(false);

    const uefiResult = await proxy.handle(context(fixture('ovmf-uefi-pxe-discover.bin')));
    const u = wire((uefiResult.replies[0] as { packet: DhcpPacket }).packet);
    expect(u.options.has(43)).toBe(false);
    expect(u.options.get(60)?.toString()).toBe('PXEClient');
    expect(u.file).toBe('ipxe.efi');
    expect(u.siaddr).toBe('10.9.0.1');
  });

  it('proxy mode: only Pis are delayed; plain DHCP clients and REQUESTs are not answered', async () => {
    const proxy = new ProxyModeHandler('10.9.0.1', 1500);
    const pi = decodePacket(raspberryPi4Discover());
    if (!pi.ok) throw new Error(pi.reason);
    expect((await proxy.handle(context(pi.packet))).replies[0]?.delayMs).toBe(1500);
    expect((await proxy.handle(context(fixture('ovmf-uefi-pxe-discover.bin')))).replies[0]?.delayMs).toBe(0);
    expect((await proxy.handle(context(fixture('udhcpc-discover.bin')))).replies).toEqual([]);
    expect((await proxy.handle(context(fixture('qemu-seabios-ipxe-request.bin')))).outcome).toBe('ignored-proxy-not-discover');
  });

  it('full mode: a relayed request is answered to giaddr:67 with option 82 echoed unchanged, last', async () => {
    const request = fixture('udhcpc-discover.bin');
    request.giaddr = '10.9.0.2';
    request.hops = 1;
    const agentInfo = Buffer.from('0106657468302f31020401020304', 'hex');
    request.options.set(82, agentInfo);
    const result = await full().handle(context(request));
    expect(result.replies[0]?.destination).toEqual({ address: '10.9.0.2', port: 67 });
    const offer = wire((result.replies[0] as { packet: DhcpPacket }).packet);
    expect(offer.giaddr).toBe('10.9.0.2');
    expect(offer.hops).toBe(0);
    expect(offer.options.get(82)).toEqual(agentInfo);
    expect([...offer.options.keys()].at(-1)).toBe(82);
  });

  it('full mode: a client that chose another server frees the address we offered it', async () => {
    const pool = new LeasePool(config.dhcp.subnets, store, 30_000, 600_000);
    const handler = new FullModeHandler(pool, '10.9.0.1');
    const offered = wire(
      ((await handler.handle(context(fixture('udhcpc-discover.bin')))).replies[0] as { packet: DhcpPacket }).packet,
    ).yiaddr;
    expect(pool.isAvailableTo(ipv4ToNumber(offered), 'someone-else', 'someone-else', Date.now())).toBe(false);
    const request = fixture('udhcpc-request.bin');
    request.options.set(54, Buffer.from([10, 9, 0, 254]));
    expect((await handler.handle(context(request))).outcome).toBe('ignored-other-server');
    expect(pool.isAvailableTo(ipv4ToNumber(offered), 'someone-else', 'someone-else', Date.now())).toBe(true);
  });

  it('full mode: INFORM gets configuration only, unicast to ciaddr, with no address and no lease time', async () => {
    const inform = fixture('udhcpc-request.bin');
    inform.options.set(53, Buffer.of(8));
    inform.options.delete(50);
    inform.options.delete(54);
    inform.ciaddr = '10.9.0.77';
    const result = await full().handle(context(inform));
    expect(result.outcome).toBe('ack-inform');
    expect(result.replies[0]?.destination).toEqual({ address: '10.9.0.77', port: 68 });
    const ack = wire((result.replies[0] as { packet: DhcpPacket }).packet);
    expect(readMessageType(ack.options)).toBe(5);
    expect(ack.yiaddr).toBe('0.0.0.0');
    expect(ack.ciaddr).toBe('10.9.0.77');
    expect(ack.options.has(51)).toBe(false);
    expect(ack.options.get(1)?.toString('hex')).toBe('ffffff00');
    expect(ack.options.get(6)?.toString('hex')).toBe('0a090001');
  });

  it('boot server (4011): UEFI gets an ACK with the file, unicast back to the source', async () => {
    const request = fixture('ovmf-uefi-pxe-discover.bin');
    request.options.set(53, Buffer.of(3));
    request.ciaddr = '10.9.0.150';
    const result = await new BootServerHandler('10.9.0.1').handle(context(request, 'boot-server'));
    expect(result.replies[0]?.destination).toEqual({ address: '10.9.0.150', port: 4011 });
    const ack = wire((result.replies[0] as { packet: DhcpPacket }).packet);
    expect(readMessageType(ack.options)).toBe(5);
    expect(ack.file).toBe('ipxe.efi');
    expect(ack.options.get(60)?.toString()).toBe('PXEClient');
    expect(ack.ciaddr).toBe('10.9.0.150');
  });
});
