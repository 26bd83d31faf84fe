// DHCP option codes bootfarm reads or writes, and the option-area walker.
// Options are kept as raw Buffers keyed by code; typed, bounds-checked readers
// live in readers.ts. Nothing here throws on malformed input: the walker
// returns a reason string instead, so the socket handler can count and drop.

export const Opt = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTERS: 3,
  DNS_SERVERS: 6,
  HOST_NAME: 12,
  DOMAIN_NAME: 15,
  ROOT_PATH: 17,
  BROADCAST_ADDRESS: 28,
  VENDOR_SPECIFIC: 43,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAMETER_REQUEST_LIST: 55,
  MESSAGE: 56,
  MAX_MESSAGE_SIZE: 57,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  VENDOR_CLASS: 60,
  CLIENT_ID: 61,
  TFTP_SERVER_NAME: 66,
  BOOTFILE_NAME: 67,
  USER_CLASS: 77,
  RELAY_AGENT_INFO: 82,
  CLIENT_ARCH: 93,
  CLIENT_NDI: 94,
  CLIENT_MACHINE_ID: 97,
  IPXE_ENCAP: 175,
  END: 255,
} as const;

export const MessageType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;

export const MESSAGE_TYPE_NAMES: Record<number, string> = {
  1: 'DISCOVER',
  2: 'OFFER',
  3: 'REQUEST',
  4: 'DECLINE',
  5: 'ACK',
  6: 'NAK',
  7: 'RELEASE',
  8: 'INFORM',
};

/**
 * Options of one message: code -> value. Repeated instances of a code are
 * concatenated in wire order (RFC 3396), so a value may exceed 255 bytes.
 * A Map keeps first-seen order, which the encoder preserves.
 */
export type DhcpOptions = Map<number, Buffer>;

export type WalkResult = { ok: true } | { ok: false; reason: string };

/**
 * Walks one option area (the options field, or an overloaded file/sname field),
 * appending each option to `parts`. PAD is skipped; END stops the walk; the
 * area may end without END (some clients omit it in overloaded fields).
 */
export function walkOptionArea(area: Buffer, parts: Map<number, Buffer[]>): WalkResult {
  let i = 0;
  while (i < area.length) {
    const code = area[i] as number;
    if (code === Opt.PAD) {
      i += 1;
      continue;
    }
    if (code === Opt.END) return { ok: true };
    if (i + 1 >= area.length) return { ok: false, reason: `option ${code} has no length byte` };
    const len = area[i + 1] as number;
    const start = i + 2;
    if (start + len > area.length) {
      return { ok: false, reason: `option ${code} length ${len} runs past the end of the packet` };
    }
    const list = parts.get(code);
    const value = area.subarray(start, start + len);
    if (list) list.push(value);
    else parts.set(code, [value]);
    i = start + len;
  }
  return { ok: true };
}

/** Serialises one option, splitting values longer than 255 bytes into instances (RFC 3396). */
export function optionInstancesLength(value: Buffer): number {
  if (value.length === 0) return 2;
  const instances = Math.ceil(value.length / 255);
  return value.length + 2 * instances;
}

export function writeOption(out: Buffer, offset: number, code: number, value: Buffer): number {
  if (value.length === 0) {
    out[offset] = code;
    out[offset + 1] = 0;
    return offset + 2;
  }
  let pos = offset;
  for (let start = 0; start < value.length; start += 255) {
    const chunk = value.subarray(start, Math.min(start + 255, value.length));
    out[pos] = code;
    out[pos + 1] = chunk.length;
    chunk.copy(out, pos + 2);
    pos += 2 + chunk.length;
  }
  return pos;
}
