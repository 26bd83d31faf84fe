// The Raspberry Pi bootloader stand-in (server/lab/pi/, run as
// server/lab/pi-bootloader.ts) builds its own packets; these tests hold them to
// the Raspberry Pi documentation (boot-net.adoc, eeprom-bootloader.adoc),
// raspberrypi/rpi-eeprom#82 and RFC 1350 §5, and
// decode them with bootfarm's own DHCP codec, so the client and the server agree
// on the wire format without the client importing the server.
import { describe, expect, it } from 'vitest';
import { decodePacket, encodePacket, type DhcpPacket } from '../../server/dhcp/codec/packet.js';
import {
  readClientArch,
  readClientMachineId,
  readClientNdi,
  readMessageType,
  readParameterRequestList,
  readRaspberryPiMachineId,
  readRequestedIp,
  readServerId,
  readVendorClass,
} from '../../server/dhcp/codec/readers.js';
import { autoInitramfsName, parseConfigTxt } from '../../server/lab/pi/config-txt.js';
import { PI_PARAMETER_REQUEST_LIST, buildDiscover, buildRequest } from '../../server/lab/pi/dhcp-build.js';
import { judgeOffer, parseOption43, summariseReply } from '../../server/lab/pi/dhcp-offer.js';
import { parseDhcpMessage } from '../../server/lab/pi/dhcp-parse.js';
import { maskToPrefix } from '../../server/lab/pi/ipv4.js';
import { makeIdentity } from '../../server/lab/pi/model.js';
import { tftpPrefix } from '../../server/lab/pi/options.js';
import { buildAck, buildError, buildPiRrq, checkOack, parseTftpPacket } from '../../server/lab/pi/tftp-packets.js';

const MAC = 'dc:a6:32:01:02:03';
const XID = 0x1a2b3c4d;

function decodeOk(buf: Buffer): DhcpPacket {
  const r = decodePacket(buf);
  if (!r.ok) throw new Error(r.reason);
  return r.packet;
}

/** The canonical option 43 of boot-net.adoc's capture: 06 01 03 | 0a 04 00 "PXE" | 09 14 00 00 11 "Raspberry Pi Boot" | ff */
const CANONICAL_43 = Buffer.concat([
  Buffer.from('060103', 'hex'),
  Buffer.from('0a0400', 'hex'),
  Buffer.from('PXE', 'latin1'),
  Buffer.from('0914000011', 'hex'),
  Buffer.from('Raspberry Pi Boot', 'latin1'),
  Buffer.from('ff', 'hex'),
]);
/** The LTSP / Pi 3B form with three trailing spaces: sub-option 9 is 09 17 00 00 14 + 20 chars. */
const SPACED_43 = Buffer.concat([
  Buffer.from('060103', 'hex'),
  Buffer.from('0a0400', 'hex'),
  Buffer.from('PXE', 'latin1'),
  Buffer.from('0917000014', 'hex'),
  Buffer.from('Raspberry Pi Boot   ', 'latin1'),
  Buffer.from('ff', 'hex'),
]);

describe('DISCOVER', () => {
  const pi4 = makeIdentity(MAC, '1234abcd', 4);
  const bytes = buildDiscover(pi4, XID);
  const pkt = decodeOk(bytes);

  it('has the BOOTP header of an Ethernet client with no address', () => {
    expect(pkt.op).toBe(1);
    expect(pkt.htype).toBe(1);
    expect(pkt.hlen).toBe(6);
    expect(pkt.hops).toBe(0);
    expect(pkt.xid).toBe(XID);
    expect(pkt.flags).toBe(0x8000);
    expect(pkt.ciaddr).toBe('0.0.0.0');
    expect(pkt.yiaddr).toBe('0.0.0.0');
    expect(pkt.chaddr.toString('hex')).toBe('dca632010203');
    // chaddr padding is zero
    expect(bytes.subarray(34, 44).equals(Buffer.alloc(10))).toBe(true);
  });

  it('carries the Pi 4 EEPROM options, in the captured order, unpadded (322 bytes)', () => {
    expect(readMessageType(pkt.options)).toBe(1);
    expect(readVendorClass(pkt.options)).toBe('PXEClient:Arch:00000:UNDI:002001');
    expect(readClientArch(pkt.options)).toEqual([0]);
    expect(readClientNdi(pkt.options)).toEqual({ type: 1, major: 2, minor: 1 });
    expect(readParameterRequestList(pkt.options)).toEqual([1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135]);
    expect(readParameterRequestList(pkt.options)).toEqual([...PI_PARAMETER_REQUEST_LIST]);
    expect(bytes.length).toBe(322);
    const parsed = parseDhcpMessage(bytes);
    expect(parsed.ok && parsed.message.order).toEqual([53, 55, 93, 94, 97, 60]);
    expect(bytes[bytes.length - 1]).toBe(255);
  });

  it('option 97 is 00 + "RPi4" + board revision + MAC bytes 2..5 + serial, read back by bootfarm', () => {
    const id = readRaspberryPiMachineId(pkt.options);
    expect(id).toEqual({ fourcc: 'RPi4', model: 4, boardRevision: 0x00c03111, macLow: '32010203', serial: '1234abcd' });
    const raw = readClientMachineId(pkt.options) as Buffer;
    expect(raw.readUInt32LE(0)).toBe(0x34695052);
    expect(pkt.options.get(97)?.toString('hex')).toBe('00' + '52506934' + '1131c000' + '32010203' + 'cdab3412');
  });

  it('Pi 5 sends "RPi5" and its own board revision', () => {
    const pi5 = decodeOk(buildDiscover(makeIdentity(MAC, '00c0ffee', 5), XID));
    expect(readRaspberryPiMachineId(pi5.options)).toEqual({
      fourcc: 'RPi5',
      model: 5,
      boardRevision: 0x00d04170,
      macLow: '32010203',
      serial: '00c0ffee',
    });
    expect(readClientArch(pi5.options)).toEqual([0]);
    expect(readVendorClass(pi5.options)).toBe('PXEClient:Arch:00000:UNDI:002001');
  });

  it('a 16-digit serial keeps its low 8 digits, as the TFTP prefix does', () => {
    const id = makeIdentity(MAC, '10000000abcd1234', 4);
    expect(readRaspberryPiMachineId(decodeOk(buildDiscover(id, XID)).options)?.serial).toBe('abcd1234');
    expect(tftpPrefix('serial', id)).toBe('abcd1234/');
    expect(tftpPrefix('mac', id)).toBe('dc-a6-32-01-02-03/');
    expect(tftpPrefix('none', id)).toBeUndefined();
  });

  it('can clear the broadcast flag like captured Pi 4s', () => {
    expect(decodeOk(buildDiscover(pi4, XID, { broadcast: false })).flags).toBe(0);
  });
});

describe('REQUEST', () => {
  const pi4 = makeIdentity(MAC, '1234abcd', 4);
  const bytes = buildRequest(pi4, XID, '10.98.0.57', '10.98.0.1');
  const pkt = decodeOk(bytes);

  it('selects the offer (50, 54) with the same xid and 97, and has no option 60 (rpi-eeprom#82)', () => {
    expect(readMessageType(pkt.options)).toBe(3);
    expect(pkt.xid).toBe(XID);
    expect(pkt.ciaddr).toBe('0.0.0.0');
    expect(readRequestedIp(pkt.options)).toBe('10.98.0.57');
    expect(readServerId(pkt.options)).toBe('10.98.0.1');
    expect(pkt.options.has(60)).toBe(false);
    expect(readVendorClass(pkt.options)).toBeUndefined();
    expect(readRaspberryPiMachineId(pkt.options)?.serial).toBe('1234abcd');
    expect(pkt.options.get(97)?.equals(decodeOk(buildDiscover(pi4, XID)).options.get(97) as Buffer)).toBe(true);
  });
});

describe('option 43', () => {
  it('accepts the canonical 32-byte form from the Pi documentation', () => {
    expect(CANONICAL_43.length).toBe(32);
    const a = parseOption43(CANONICAL_43);
    expect(a.wellFormed).toBe(true);
    expect(a.matched).toBe(true);
    expect(a.menu).toEqual([{ type: 0, description: 'Raspberry Pi Boot' }]);
    expect(a.subOptions.map((s) => s.code)).toEqual([6, 10, 9]);
  });

  it('accepts the 3-space form (substring match)', () => {
    const a = parseOption43(SPACED_43);
    expect(a.matched).toBe(true);
    expect(a.menu[0]?.description).toBe('Raspberry Pi Boot   ');
  });

  it('rejects option 43 without the string', () => {
    expect(parseOption43(Buffer.from('060108', 'hex')).matched).toBe(false); // pixiecore's BIOS proxy 43
    const ipxeMenu = Buffer.concat([Buffer.from('060103090c000009', 'hex'), Buffer.from('iPXE boot', 'latin1'), Buffer.from('ff', 'hex')]);
    const a = parseOption43(ipxeMenu);
    expect(a.wellFormed).toBe(true);
    expect(a.matched).toBe(false);
    expect(a.menu).toEqual([{ type: 0, description: 'iPXE boot' }]);
  });

  it('does not count the string outside a sub-option 9 menu, or inside a malformed one', () => {
    const raw = parseOption43(Buffer.from('Raspberry Pi Boot', 'latin1'));
    expect(raw.matched).toBe(false);
    expect(raw.containsString).toBe(true);
    const truncated = Buffer.from(CANONICAL_43);
    truncated[10] = 0x30; // sub-option 9 claims 48 bytes
    const t = parseOption43(truncated);
    expect(t.wellFormed).toBe(false);
    expect(t.matched).toBe(false);
  });

  it('honours a PXE_OPTION43 override', () => {
    expect(parseOption43(CANONICAL_43, 'Something Else').matched).toBe(false);
  });
});

describe('OFFER judgement, with the OFFER encoded by bootfarm', () => {
  function offer(options: Array<[number, Buffer]>, siaddr = '10.98.0.1', yiaddr = '10.98.0.57'): Buffer {
    return encodePacket({
      op: 2,
      htype: 1,
      hlen: 6,
      hops: 0,
      xid: XID,
      secs: 0,
      flags: 0x8000,
      ciaddr: '0.0.0.0',
      yiaddr,
      siaddr,
      giaddr: '0.0.0.0',
      chaddr: Buffer.from('dca632010203', 'hex'),
      sname: '',
      file: '',
      options: new Map(options),
    }).buffer;
  }
  const base: Array<[number, Buffer]> = [
    [53, Buffer.of(2)],
    [54, Buffer.from([10, 98, 0, 1])],
    [51, Buffer.from([0, 0, 0x0e, 0x10])],
    [1, Buffer.from([255, 255, 255, 0])],
    [60, Buffer.from('PXEClient')],
    [43, SPACED_43],
  ];
  const judge = (buf: Buffer) => {
    const parsed = parseDhcpMessage(buf);
    if (!parsed.ok) throw new Error(parsed.reason);
    return judgeOffer(summariseReply(parsed.message, buf, '10.98.0.1:67'));
  };

  it('uses option 54 when there is no option 66', () => {
    const v = judge(offer(base));
    expect(v.bootUsable && v.addressUsable).toBe(true);
    expect(v.tftpServer).toBe('10.98.0.1');
    expect(v.tftpServerSource).toBe('option54');
    expect(v.warnings).toEqual([]);
  });

  it('prefers a dotted-quad option 66 and warns when siaddr/54/66 disagree', () => {
    const v = judge(offer([...base, [66, Buffer.from('10.98.0.2')]]));
    expect(v.tftpServer).toBe('10.98.0.2');
    expect(v.tftpServerSource).toBe('option66');
    expect(v.warnings.join(' ')).toMatch(/disagree/);
  });

  it('refuses a host name in option 66 and an offer without the menu', () => {
    expect(judge(offer([...base, [66, Buffer.from('tftp.example')]])).bootUsable).toBe(false);
    const no43 = judge(offer(base.filter(([c]) => c !== 43)));
    expect(no43.bootUsable).toBe(false);
    expect(no43.addressUsable).toBe(true);
  });

  it('sees a proxyDHCP offer as boot-only', () => {
    const v = judge(
      offer(
        base.filter(([c]) => c !== 51 && c !== 1),
        '10.98.0.1',
        '0.0.0.0',
      ),
    );
    expect(v.addressUsable).toBe(false);
    expect(v.bootUsable).toBe(true);
  });
});

describe('TFTP packets', () => {
  it('the Pi 4 RRQ is exactly 00 01 path 00 octet 00 tsize 00 0 00 blksize 00 1024 00', () => {
    const expected = Buffer.concat([
      Buffer.of(0, 1),
      Buffer.from('1234abcd/start4.elf'),
      Buffer.of(0),
      Buffer.from('octet'),
      Buffer.of(0),
      Buffer.from('tsize'),
      Buffer.of(0),
      Buffer.from('0'),
      Buffer.of(0),
      Buffer.from('blksize'),
      Buffer.of(0),
      Buffer.from('1024'),
      Buffer.of(0),
    ]);
    expect(buildPiRrq('1234abcd/start4.elf', 1024).equals(expected)).toBe(true);
    expect(buildPiRrq('config.txt', 1024).toString('latin1')).toBe('\0\x01config.txt\0octet\0tsize\x000\0blksize\x001024\0');
    const back = parseTftpPacket(buildPiRrq('config.txt', 1468));
    expect(back).toEqual({
      op: 'RRQ',
      filename: 'config.txt',
      mode: 'octet',
      options: [
        ['tsize', '0'],
        ['blksize', '1468'],
      ],
    });
  });

  it('ACK wraps block numbers at 16 bits and ERROR 0 is "Early terminate"', () => {
    expect(buildAck(65535).toString('hex')).toBe('0004ffff');
    expect(buildAck(65536).toString('hex')).toBe('00040000');
    expect(buildError(0, 'Early terminate').toString('latin1')).toBe('\0\x05\0\0Early terminate\0');
    expect(parseTftpPacket(buildError(1, 'File not found'))).toEqual({ op: 'ERROR', code: 1, message: 'File not found' });
  });

  it('parses DATA and OACK, and rejects a malformed OACK', () => {
    const data = Buffer.concat([Buffer.from('00030007', 'hex'), Buffer.alloc(10, 7)]);
    const d = parseTftpPacket(data);
    expect(d.op === 'DATA' && d.block === 7 && d.data.length === 10).toBe(true);
    expect(parseTftpPacket(Buffer.from('\0\x06tsize\x0037\0blksize\x001024\0', 'latin1'))).toEqual({
      op: 'OACK',
      options: [
        ['tsize', '37'],
        ['blksize', '1024'],
      ],
    });
    expect(parseTftpPacket(Buffer.from('\0\x06tsize\x0037', 'latin1')).op).toBe('invalid');
    expect(parseTftpPacket(Buffer.from('\0\x06tsize\0', 'latin1')).op).toBe('invalid');
  });

  it('checks the OACK against what was asked (RFC 2347/2348/2349)', () => {
    const asked: Array<[string, string]> = [
      ['tsize', '0'],
      ['blksize', '1024'],
    ];
    expect(
      checkOack(asked, [
        ['TSIZE', '2097152'],
        ['BlkSize', '1024'],
      ]),
    ).toEqual({ ok: true, blksize: 1024, tsize: 2097152, accepted: ['tsize', 'blksize'] });
    expect(checkOack(asked, [['tsize', '5']])).toEqual({ ok: true, blksize: 512, tsize: 5, accepted: ['tsize'] });
    expect(checkOack(asked, [['blksize', '512']]).ok).toBe(true);
    expect(checkOack(asked, [['blksize', '1468']]).ok).toBe(false);
    expect(checkOack(asked, [['windowsize', '4']]).ok).toBe(false);
    expect(
      checkOack(asked, [
        ['tsize', '1'],
        ['tsize', '1'],
      ]).ok,
    ).toBe(false);
    expect(checkOack(asked, [['tsize', 'big']]).ok).toBe(false);
  });
});

describe('config.txt', () => {
  it('finds kernel, initramfs, overlays and honours [piN] sections', () => {
    const cfg = parseConfigTxt(
      [
        '# comment',
        'kernel=vmlinuz-pi',
        'initramfs initrd.img followkernel',
        'dtoverlay=vc4-kms-v3d,cma-256',
        '[pi5]',
        'kernel=kernel_2712.img',
        '[all]',
        'cmdline=cmd.txt',
      ].join('\n'),
      4,
    );
    expect(cfg.kernel).toBe('vmlinuz-pi');
    expect(cfg.initramfs).toBe('initrd.img');
    expect(cfg.overlays).toEqual(['vc4-kms-v3d']);
    expect(cfg.cmdline).toBe('cmd.txt');
    expect(parseConfigTxt('[pi5]\nkernel=kernel_2712.img\n', 5).kernel).toBe('kernel_2712.img');
    expect(parseConfigTxt('[0x1234abcd]\nkernel=mine.img\n[all]\n', 4, 0x1234abcd).kernel).toBe('mine.img');
    expect(parseConfigTxt('[0x1234abcd]\nkernel=mine.img\n[all]\n', 4, 0x99).kernel).toBeUndefined();
  });

  it('derives auto_initramfs names and netmask prefixes', () => {
    expect(autoInitramfsName('kernel8.img')).toBe('initramfs8');
    expect(autoInitramfsName('kernel_2712.img')).toBe('initramfs_2712');
    expect(autoInitramfsName('vmlinuz')).toBeUndefined();
    expect(maskToPrefix('255.255.255.0')).toBe(24);
    expect(maskToPrefix('255.255.0.255')).toBeUndefined();
  });
});
