// How replies are built and where they go (server/dhcp/server/reply.ts), and what
// the ProxyDHCP and port-4011 boot-server handlers answer (proxy-handler.ts,
// boot-server-handler.ts): header fields, RFC 2131 §4.1 destinations, lease
// options, the boot options per plan and style, the boot item echo of PXE 2.1.
// Packets are the captured client fixtures (test/fixtures/dhcp) or built here.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { decodePacket, type DhcpPacket } from '../../server/dhcp/codec/packet.js';
import { readMessageType } from '../../server/dhcp/codec/readers.js';
import { identifyClient } from '../../server/dhcp/codec/identity.js';
import { planBoot, type BootPlan } from '../../server/boot/policy.js';
import type { RequestContext } from '../../server/dhcp/server/context.js';
import { ProxyModeHandler } from '../../server/dhcp/server/proxy-handler.js';
import { BootServerHandler } from '../../server/dhcp/server/boot-server-handler.js';
import {
  addBootOptions,
  addLeaseOptions,
  destinationProblem,
  replyDestination,
  replySkeleton,
  type BootOptionStyle,
} from '../../server/dhcp/server/reply.js';
import type { ResolvedSubnet } from '../../server/config/types.js';
import { parseCidr, type Cidr } from '../../server/util/ipv4.js';
import { REPO_ROOT } from '../lib/bootfarm.js';

const DEADLINE_MS = 20_000;
const SERVER = '10.9.0.1';

function fixture(name: string): DhcpPacket {
  const r = decodePacket(readFileSync(path.join(REPO_ROOT, 'test/fixtures/dhcp', name)));
  if (!r.ok) throw new Error(r.reason);
  return r.packet;
}

function context(packet: DhcpPacket, source = { address: '10.9.0.150', port: 4011 }): RequestContext {
  const identity = identifyClient(packet);
  return {
    packet,
    messageType: readMessageType(packet.options) as number,
    identity,
    node: undefined,
    known: false,
    plan: planBoot(identity, undefined, {
      serverAddress: SERVER,
      httpPort: 8080,
      bootFiles: { bios: 'undionly.kpxe', uefiX64: 'ipxe.efi', uefiArm64: 'grub/arm64-efi/core.efi' },
    }),
    source,
    listener: 'dhcp',
    now: Date.now(),
  };
}

const filePlan = (over: Partial<Extract<BootPlan, { kind: 'file' }>> = {}): BootPlan => ({
  kind: 'file',
  firmware: 'bios',
  bootFile: 'undionly.kpxe',
  bootServer: SERVER,
  vendorClass: 'PXEClient',
  ipxe: false,
  ...over,
});

/** The reply addBootOptions makes for `plan` from `request` in `style`. */
function booted(request: DhcpPacket, plan: BootPlan, style: BootOptionStyle): DhcpPacket {
  const reply = replySkeleton(request, 2, SERVER);
  addBootOptions(request, reply, plan, style);
  return reply;
}

const optionText = (p: DhcpPacket, code: number) => p.options.get(code)?.toString('latin1');
const MACHINE_ID = Buffer.concat([Buffer.of(0), Buffer.alloc(16, 0x5a)]);

describe('where a reply may go', () => {
  it(
    'refuses port 0 and ports outside 1-65535, the zero address, loopback and multicast/reserved, except the broadcast address',
    () => {
      const problem = (address: string, port: number) => destinationProblem({ address, port });
      expect(problem('10.9.0.150', 0)).toBe('port-0');
      for (const port of [-1, 65536, 1.5, Number.NaN]) expect(problem('10.9.0.150', port), String(port)).toBe('bad-port');
      for (const port of [1, 68, 4011, 65535]) expect(problem('10.9.0.150', port), String(port)).toBeUndefined();
      for (const address of ['0.0.0.0', '127.0.0.1', '127.255.255.254', '224.0.0.1', '239.1.2.3', '240.0.0.1', '255.255.255.254'])
        expect(problem(address, 68), address).toBe('bad-address');
      for (const address of ['255.255.255.255', '10.9.0.150', '126.255.255.255', '128.0.0.1', '223.255.255.255'])
        expect(problem(address, 68), address).toBeUndefined();
    },
    DEADLINE_MS,
  );

  it(
    'RFC 2131 §4.1: via the relay (a NAK there with the broadcast bit), else a NAK broadcast, else ciaddr, else broadcast',
    () => {
      const request = fixture('udhcpc-request.bin');
      request.flags = 0;
      request.ciaddr = '0.0.0.0';
      const reply = () => replySkeleton(request, 5, SERVER);

      let r = reply();
      expect(replyDestination(request, r, false)).toEqual({ address: '255.255.255.255', port: 68 });
      request.ciaddr = '10.9.0.150';
      expect(replyDestination(request, (r = reply()), false)).toEqual({ address: '10.9.0.150', port: 68 });
      expect(replyDestination(request, (r = reply()), true)).toEqual({ address: '255.255.255.255', port: 68 });
      expect(r.flags).toBe(0);

      request.giaddr = '10.9.0.2';
      expect(replyDestination(request, (r = reply()), false)).toEqual({ address: '10.9.0.2', port: 67 });
      expect(r.flags).toBe(0);
      expect(replyDestination(request, (r = reply()), true)).toEqual({ address: '10.9.0.2', port: 67 });
      expect(r.flags).toBe(0x8000);
    },
    DEADLINE_MS,
  );
});

describe('the reply skeleton and lease options', () => {
  it(
    'copies xid, htype, hlen, giaddr, chaddr and only the broadcast flag; zeroes the rest; sname and file empty',
    () => {
      const request = fixture('qemu-seabios-ipxe-discover.bin');
      request.flags = 0xffff;
      request.hops = 3;
      request.secs = 9;
      request.ciaddr = '10.9.0.150';
      request.giaddr = '10.9.0.2';
      request.sname = 'a-server';
      request.file = 'a-file';
      const reply = replySkeleton(request, 2, SERVER);
      expect({ ...reply, options: undefined }).toEqual({
        op: 2,
        htype: request.htype,
        hlen: request.hlen,
        hops: 0,
        xid: request.xid,
        secs: 0,
        flags: 0x8000,
        ciaddr: '0.0.0.0',
        yiaddr: '0.0.0.0',
        siaddr: '0.0.0.0',
        giaddr: '10.9.0.2',
        chaddr: request.chaddr,
        sname: '',
        file: '',
        options: undefined,
      });
      expect([...reply.options]).toEqual([
        [53, Buffer.of(2)],
        [54, Buffer.of(10, 9, 0, 1)],
      ]);
    },
    DEADLINE_MS,
  );

  it(
    'a subnet without router, DNS or domain sends none of those options; with them, each',
    () => {
      const bare: ResolvedSubnet = {
        cidr: '10.9.0.0/24',
        network: parseCidr('10.9.0.0/24') as Cidr,
        netmask: '255.255.255.0',
        broadcast: '10.9.0.255',
        rangeStart: 0,
        rangeEnd: 0,
        router: undefined,
        dns: [],
        domain: undefined,
        leaseSeconds: 600,
      };
      const reply = replySkeleton(fixture('udhcpc-discover.bin'), 2, SERVER);
      addLeaseOptions(reply, bare, true, undefined);
      expect([...reply.options.keys()].sort((a, b) => a - b)).toEqual([1, 28, 51, 53, 54, 58, 59]);

      const full = { ...bare, router: '10.9.0.1', dns: ['10.9.0.53', '10.9.0.54'], domain: 'lab.example' };
      const withAll = replySkeleton(fixture('udhcpc-discover.bin'), 2, SERVER);
      addLeaseOptions(withAll, full, false, 'node-1');
      expect(withAll.options.get(3)).toEqual(Buffer.of(10, 9, 0, 1));
      expect(withAll.options.get(6)).toEqual(Buffer.of(10, 9, 0, 53, 10, 9, 0, 54));
      expect(optionText(withAll, 15)).toBe('lab.example');
      expect(optionText(withAll, 12)).toBe('node-1');
      expect(withAll.options.has(51)).toBe(false);
    },
    DEADLINE_MS,
  );
});

describe('boot options by plan and style', () => {
  it(
    'a plan of none adds nothing',
    () => {
      const request = fixture('udhcpc-discover.bin');
      const reply = booted(request, { kind: 'none', reason: 'not a network-boot client' }, 'full');
      expect(reply.siaddr).toBe('0.0.0.0');
      expect(reply.file).toBe('');
      expect([...reply.options.keys()]).toEqual([53, 54]);
    },
    DEADLINE_MS,
  );

  it(
    'a Raspberry Pi gets 60, 66, the Pi menu in 43, and option 97 only when it sent one',
    () => {
      const request = fixture('udhcpc-discover.bin');
      const pi: BootPlan = { kind: 'raspberry-pi', bootServer: SERVER, serial: undefined, model: 4 };
      const without = booted(request, pi, 'full');
      expect(without.siaddr).toBe(SERVER);
      expect(optionText(without, 60)).toBe('PXEClient');
      expect(optionText(without, 66)).toBe(SERVER);
      expect(without.options.has(97)).toBe(false);
      request.options.set(97, MACHINE_ID);
      expect(booted(request, pi, 'full').options.get(97)).toEqual(MACHINE_ID);
    },
    DEADLINE_MS,
  );

  it(
    'UEFI HTTP boot says HTTPClient in every style; PXE says PXEClient only off full mode',
    () => {
      const request = fixture('udhcpc-discover.bin');
      for (const style of ['full', 'proxy-offer', 'boot-server'] as const)
        expect(optionText(booted(request, filePlan({ firmware: 'uefi', vendorClass: 'HTTPClient' }), style), 60), style).toBe('HTTPClient');
      expect(booted(request, filePlan(), 'full').options.has(60)).toBe(false);
      expect(optionText(booted(request, filePlan(), 'proxy-offer'), 60)).toBe('PXEClient');
      expect(optionText(booted(request, filePlan(), 'boot-server'), 60)).toBe('PXEClient');
    },
    DEADLINE_MS,
  );

  it(
    'option 97 is echoed in proxy and boot-server replies, never in full mode',
    () => {
      const request = fixture('udhcpc-discover.bin');
      request.options.set(97, MACHINE_ID);
      expect(booted(request, filePlan(), 'full').options.has(97)).toBe(false);
      expect(booted(request, filePlan(), 'proxy-offer').options.get(97)).toEqual(MACHINE_ID);
      expect(booted(request, filePlan(), 'boot-server').options.get(97)).toEqual(MACHINE_ID);
      request.options.delete(97);
      expect(booted(request, filePlan(), 'proxy-offer').options.has(97)).toBe(false);
    },
    DEADLINE_MS,
  );

  it(
    'discovery control 8 only in a proxy offer to a BIOS PXE ROM; no-pxedhcp only to iPXE in full mode',
    () => {
      const request = fixture('udhcpc-discover.bin');
      expect(booted(request, filePlan(), 'proxy-offer').options.get(43)?.toString('hex')).toBe('060108ff');
      expect(booted(request, filePlan({ firmware: 'uefi' }), 'proxy-offer').options.has(43)).toBe(false);
      expect(booted(request, filePlan({ ipxe: true }), 'proxy-offer').options.has(43)).toBe(false);
      expect(booted(request, filePlan(), 'full').options.has(43)).toBe(false);
      expect(booted(request, filePlan(), 'boot-server').options.has(43)).toBe(false);

      expect(
        booted(request, filePlan({ ipxe: true }), 'full')
          .options.get(175)
          ?.toString('hex'),
      ).toBe('b00101');
      expect(booted(request, filePlan(), 'full').options.has(175)).toBe(false);
      expect(booted(request, filePlan({ ipxe: true }), 'proxy-offer').options.has(175)).toBe(false);
    },
    DEADLINE_MS,
  );

  it(
    "a boot-server reply echoes the request's boot item (43/71, length 4) after pads and other items; nothing else, and only there",
    () => {
      const request = fixture('udhcpc-discover.bin');
      const item = (vendor: number[]) => {
        request.options.set(43, Buffer.from(vendor));
        return booted(request, filePlan(), 'boot-server').options.get(43)?.toString('hex');
      };
      expect(item([71, 4, 0x80, 0x00, 0x00, 0x00, 0xff])).toBe('4704800000' + '00ff');
      // Pads and another sub-option (6: discovery control) before it are stepped over.
      expect(item([0, 0, 6, 1, 3, 71, 4, 0x00, 0x01, 0x00, 0x02, 0xff])).toBe('470400010002ff');
      // One pad byte; another item of length 4 first (only 71 is echoed); the item ending the buffer with no End.
      expect(item([0, 71, 4, 0x00, 0x01, 0x00, 0x02, 0xff])).toBe('470400010002ff');
      expect(item([9, 4, 1, 2, 3, 4, 71, 4, 0x00, 0x01, 0x00, 0x03, 0xff])).toBe('470400010003ff');
      expect(item([71, 4, 0x00, 0x01, 0x00, 0x04])).toBe('470400010004ff');
      // End stops the walk even when an item follows it.
      expect(item([0xff, 0, 71, 4, 1, 2, 3, 4])).toBeUndefined();
      // Its length is not 4, it is cut short, or End comes first: nothing echoed.
      expect(item([71, 2, 0x80, 0x00, 0xff])).toBeUndefined();
      expect(item([71, 4, 0x80, 0x00])).toBeUndefined();
      expect(item([6, 1, 3, 0xff, 71, 4, 1, 2, 3, 4])).toBeUndefined();
      expect(item([6, 9, 3])).toBeUndefined();
      expect(item([71])).toBeUndefined();
      // A proxy offer never echoes it (a BIOS one carries its own 43).
      request.options.set(43, Buffer.from([71, 4, 0x80, 0x00, 0x00, 0x00, 0xff]));
      expect(booted(request, filePlan({ firmware: 'uefi' }), 'proxy-offer').options.has(43)).toBe(false);
    },
    DEADLINE_MS,
  );
});

describe('the ProxyDHCP and boot-server handlers', () => {
  it(
    'proxy: a client that does not netboot is ignored with the reason; an offer says its delay; it follows ciaddr like any offer',
    async () => {
      const proxy = new ProxyModeHandler(SERVER, 1000);
      const plain = await proxy.handle(context(fixture('udhcpc-discover.bin')));
      expect(plain).toEqual({
        replies: [],
        outcome: 'ignored-not-netboot',
        detail: { reason: 'not a network-boot client (no PXEClient/HTTPClient vendor class)' },
      });
      const uefi = fixture('ovmf-uefi-pxe-discover.bin');
      const offered = await proxy.handle(context(uefi));
      expect(offered.outcome).toBe('proxy-offer');
      expect(offered.detail).toEqual({ delayMs: 0 });
      expect(offered.replies[0]?.destination).toEqual({ address: '255.255.255.255', port: 68 });
      uefi.ciaddr = '10.9.0.150';
      expect((await proxy.handle(context(uefi))).replies[0]?.destination).toEqual({ address: '10.9.0.150', port: 68 });
    },
    DEADLINE_MS,
  );

  it(
    'boot server: a REQUEST or INFORM is answered to where it came from; a DISCOVER is not; a client that does not netboot is ignored',
    async () => {
      const server = new BootServerHandler(SERVER);
      const request = fixture('ovmf-uefi-pxe-discover.bin');
      const discover = await server.handle(context(request));
      expect(discover).toEqual({ replies: [], outcome: 'ignored-boot-server-type' });
      for (const type of [3, 8]) {
        request.options.set(53, Buffer.of(type));
        const answered = await server.handle(context(request, { address: '10.9.0.151', port: 4011 }));
        expect(answered.outcome, String(type)).toBe('boot-server-ack');
        expect(answered.replies[0]?.destination).toEqual({ address: '10.9.0.151', port: 4011 });
      }
      const plain = fixture('udhcpc-request.bin');
      expect(await server.handle(context(plain))).toEqual({
        replies: [],
        outcome: 'ignored-not-netboot',
        detail: { reason: 'not a network-boot client (no PXEClient/HTTPClient vendor class)' },
      });
    },
    DEADLINE_MS,
  );
});
