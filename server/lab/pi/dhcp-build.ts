// The client's DHCP packets, byte for byte as a Pi 4/5 EEPROM sends them (the wire
// summary is in server/lab/pi/dhcp-phase.ts). Its own encoder on purpose: this is
// the independent peer that checks bootfarm's codec, so it imports none of it.
import { ipBuffer, isDottedQuad } from './ipv4.js';
import { PI_MODELS, type PiIdentity } from './model.js';

export const DHCP_MAGIC = 0x63825363;
export const PI_PARAMETER_REQUEST_LIST: readonly number[] = [1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135];
/** The Pi 3 ROM's list, in its order (boot-net.adoc's capture): 43, 60, 67, 128-135, 66. */
const PI3_PARAMETER_REQUEST_LIST: readonly number[] = [43, 60, 67, 128, 129, 130, 131, 132, 133, 134, 135, 66];

function parameterRequestList(id: PiIdentity): Buffer {
  return Buffer.from(id.model === 3 ? PI3_PARAMETER_REQUEST_LIST : PI_PARAMETER_REQUEST_LIST);
}
const PI_VENDOR_CLASS = 'PXEClient:Arch:00000:UNDI:002001';
export const DEFAULT_OPTION43_MATCH = 'Raspberry Pi Boot';

export const DhcpType = { DISCOVER: 1, OFFER: 2, REQUEST: 3, DECLINE: 4, ACK: 5, NAK: 6, RELEASE: 7, INFORM: 8 } as const;

/**
 * Option 97: type 0, FourCC (LE), board revision (LE), MAC bytes 2..5, serial (LE).
 * The Pi 3B+ ROM sends type 0 and its serial (LE) four times: boot-net.adoc says "set
 * to the 32-bit serial number", and raspberrypi/firmware#1605's dnsmasq log of a 3B+
 * (b8:27:eb:6c:4c:16) shows 00:16:4c:6c:b6:16:4c:6c:b6:... (serial b66c4c16).
 */
function buildOption97(id: PiIdentity): Buffer {
  const out = Buffer.alloc(17);
  out[0] = 0;
  if (id.model === 3) {
    for (let i = 1; i < 17; i += 4) out.writeUInt32LE(id.serial >>> 0, i);
    return out;
  }
  out.writeUInt32LE(PI_MODELS[id.model].fourccValue, 1);
  out.writeUInt32LE(id.boardRevision >>> 0, 5);
  id.mac.copy(out, 9, 2, 6);
  out.writeUInt32LE(id.serial >>> 0, 13);
  return out;
}

export interface BuildDhcpOptions {
  /** Seconds since the client started (header `secs`). */
  secs?: number;
  /** Set the BROADCAST flag (0x8000). Default true. */
  broadcast?: boolean;
}

function buildBootRequest(id: PiIdentity, xid: number, options: Array<[number, Buffer]>, opts: BuildDhcpOptions): Buffer {
  const size = 240 + options.reduce((n, [, v]) => n + 2 + v.length, 0) + 1;
  const out = Buffer.alloc(size);
  out[0] = 1; // BOOTREQUEST
  out[1] = 1; // Ethernet
  out[2] = 6;
  out[3] = 0;
  out.writeUInt32BE(xid >>> 0, 4);
  out.writeUInt16BE(Math.min(0xffff, Math.max(0, Math.floor(opts.secs ?? 0))), 8);
  out.writeUInt16BE(opts.broadcast === false ? 0 : 0x8000, 10);
  id.mac.copy(out, 28, 0, 6);
  out.writeUInt32BE(DHCP_MAGIC, 236);
  let pos = 240;
  for (const [code, value] of options) {
    if (value.length > 255) throw new Error(`option ${code} is longer than 255 bytes`);
    out[pos++] = code;
    out[pos++] = value.length;
    value.copy(out, pos);
    pos += value.length;
  }
  out[pos] = 255;
  return out;
}

/** The EEPROM's DISCOVER: 53, 55, 93, 94, 97, 60, END, unpadded (322 bytes). */
export function buildDiscover(id: PiIdentity, xid: number, opts: BuildDhcpOptions = {}): Buffer {
  return buildBootRequest(
    id,
    xid,
    [
      [53, Buffer.of(DhcpType.DISCOVER)],
      [55, parameterRequestList(id)],
      [93, Buffer.of(0, 0)],
      [94, Buffer.of(1, 2, 1)],
      [97, buildOption97(id)],
      [60, Buffer.from(PI_VENDOR_CLASS, 'latin1')],
    ],
    opts,
  );
}

/** The EEPROM's REQUEST (SELECTING state): like the DISCOVER plus 50 and 54, and no option 60. */
export function buildRequest(id: PiIdentity, xid: number, requestedIp: string, serverId: string, opts: BuildDhcpOptions = {}): Buffer {
  if (!isDottedQuad(requestedIp) || !isDottedQuad(serverId)) throw new Error(`bad REQUEST addresses ${requestedIp} / ${serverId}`);
  return buildBootRequest(
    id,
    xid,
    [
      [53, Buffer.of(DhcpType.REQUEST)],
      [55, parameterRequestList(id)],
      [93, Buffer.of(0, 0)],
      [94, Buffer.of(1, 2, 1)],
      [97, buildOption97(id)],
      [50, ipBuffer(requestedIp)],
      [54, ipBuffer(serverId)],
    ],
    opts,
  );
}
