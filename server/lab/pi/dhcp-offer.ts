// Judging a reply the way the EEPROM does: option 43's PXE boot menu, where the TFTP
// server comes from (66, else 54), and the Pi documentation's advice as warnings. Pure.
import { isDottedQuad, readIp } from './ipv4.js';
import { DEFAULT_OPTION43_MATCH, DhcpType } from './dhcp-build.js';
import type { DhcpMessage } from './dhcp-parse.js';

interface PxeMenuItem {
  type: number;
  description: string;
}

export interface Option43Analysis {
  /** The sub-option TLVs parsed cleanly up to End (or the end of the option). */
  wellFormed: boolean;
  problem?: string;
  subOptions: Array<{ code: number; hex: string }>;
  menu: PxeMenuItem[];
  /** The match string is inside a sub-option 9 menu description. */
  matched: boolean;
  /** The match string appears somewhere in option 43 at all (raw-string servers). */
  containsString: boolean;
}

/**
 * Option 43 as the EEPROM reads it: PXE 2.1 sub-options; the boot menu
 * (sub-option 9, repeated {type u16, len u8, text}) must contain `match` as a
 * substring, which accepts both "Raspberry Pi Boot" and the 3-space Pi 3 form.
 */
export function parseOption43(value: Buffer, match: string = DEFAULT_OPTION43_MATCH): Option43Analysis {
  const result: Option43Analysis = {
    wellFormed: true,
    subOptions: [],
    menu: [],
    matched: false,
    containsString: value.toString('latin1').includes(match),
  };
  const fail = (problem: string): Option43Analysis => ({ ...result, wellFormed: false, problem });
  let i = 0;
  while (i < value.length) {
    const code = value[i] as number;
    if (code === 255) break;
    if (code === 0) {
      i++;
      continue;
    }
    if (i + 1 >= value.length) return fail(`sub-option ${code} has no length byte`);
    const len = value[i + 1] as number;
    if (i + 2 + len > value.length) return fail(`sub-option ${code} (length ${len}) runs past the end of option 43`);
    const body = value.subarray(i + 2, i + 2 + len);
    result.subOptions.push({ code, hex: body.toString('hex') });
    if (code === 9) {
      let j = 0;
      while (j < body.length) {
        if (j + 3 > body.length) return fail('truncated PXE boot menu item in sub-option 9');
        const type = body.readUInt16BE(j);
        const dlen = body[j + 2] as number;
        if (j + 3 + dlen > body.length) return fail(`PXE menu item description (length ${dlen}) runs past sub-option 9`);
        const description = body.subarray(j + 3, j + 3 + dlen).toString('latin1');
        result.menu.push({ type, description });
        if (description.includes(match)) result.matched = true;
        j += 3 + dlen;
      }
    }
    i += 2 + len;
  }
  return result;
}

export interface OfferSummary {
  from: string;
  messageType: number | undefined;
  yiaddr: string;
  siaddr: string;
  serverId: string | undefined;
  option66: string | undefined;
  option43Hex: string | undefined;
  option43Matched: boolean;
  option43: Option43Analysis | undefined;
  option60: string | undefined;
  subnetMask: string | undefined;
  routers: string[];
  leaseTime: number | undefined;
  file: string;
  sname: string;
  flags: number;
  length: number;
  optionOrder: number[];
  hex: string;
}

function ipOption(options: Map<number, Buffer>, code: number): string | undefined {
  const v = options.get(code);
  return v && v.length === 4 ? readIp(v, 0) : undefined;
}

export function summariseReply(msg: DhcpMessage, raw: Buffer, from: string, match: string = DEFAULT_OPTION43_MATCH): OfferSummary {
  const o43 = msg.options.get(43);
  const analysis = o43 ? parseOption43(o43, match) : undefined;
  const routers: string[] = [];
  const r = msg.options.get(3);
  if (r) for (let i = 0; i + 4 <= r.length; i += 4) routers.push(readIp(r, i));
  const lease = msg.options.get(51);
  const mt = msg.options.get(53);
  return {
    from,
    messageType: mt && mt.length === 1 ? mt[0] : undefined,
    yiaddr: msg.yiaddr,
    siaddr: msg.siaddr,
    serverId: ipOption(msg.options, 54),
    option66: msg.options.get(66)?.toString('latin1').replace(/\0+$/, ''),
    option43Hex: o43?.toString('hex'),
    option43Matched: analysis?.matched ?? false,
    option43: analysis,
    option60: msg.options.get(60)?.toString('latin1'),
    subnetMask: ipOption(msg.options, 1),
    routers,
    leaseTime: lease && lease.length === 4 ? lease.readUInt32BE(0) : undefined,
    file: msg.file,
    sname: msg.sname,
    flags: msg.flags,
    length: msg.length,
    optionOrder: msg.order,
    hex: raw.toString('hex'),
  };
}

export interface OfferVerdict {
  /** Usable as the address offer (has a yiaddr and a server id). */
  addressUsable: boolean;
  /** Carries the Pi boot options (43 matched; 66 valid if present). */
  bootUsable: boolean;
  /** Why it is not usable for booting / addressing, if not. */
  reasons: string[];
  warnings: string[];
  tftpServer: string | undefined;
  tftpServerSource: 'option66' | 'option54' | undefined;
}

/** Judges one OFFER the way the EEPROM does, plus the Pi documentation's advice as warnings. */
export function judgeOffer(s: OfferSummary, opts: { lenientOption43?: boolean; match?: string } = {}): OfferVerdict {
  const reasons: string[] = [];
  const warnings: string[] = [];
  const match = opts.match ?? DEFAULT_OPTION43_MATCH;
  if (s.messageType !== DhcpType.OFFER) reasons.push(`option 53 is ${s.messageType ?? 'missing'}, not OFFER (2)`);
  if (!s.serverId) reasons.push('no option 54 (server identifier), a MUST in an OFFER (RFC 2131 Table 3)');
  const hasAddress = s.yiaddr !== '0.0.0.0';
  const addressUsable = reasons.length === 0 && hasAddress;

  let bootUsable = reasons.length === 0;
  if (!s.option43Hex) {
    bootUsable = false;
    reasons.push(`no option 43: the bootloader needs "${match}" in a PXE menu (boot-net.adoc)`);
  } else if (!s.option43Matched) {
    const o = s.option43;
    if (o?.containsString && opts.lenientOption43) {
      warnings.push(`"${match}" is in option 43 but not inside a sub-option 9 menu item (accepted: --lenient-option43)`);
    } else {
      bootUsable = false;
      const detail =
        o?.wellFormed === false
          ? `malformed (${o.problem})`
          : o?.containsString
            ? 'the string is present but not in a sub-option 9 menu item'
            : `no "${match}" in it`;
      reasons.push(`option 43 does not carry the Raspberry Pi boot menu: ${detail}; option 43 = ${s.option43Hex}`);
    }
  }
  let tftpServer: string | undefined;
  let tftpServerSource: OfferVerdict['tftpServerSource'];
  if (s.option66 !== undefined) {
    if (!isDottedQuad(s.option66)) {
      bootUsable = false;
      reasons.push(`option 66 is ${JSON.stringify(s.option66)}, not a dotted quad (Pi 4 EEPROMs want an IPv4 address, rpi-eeprom#72)`);
    } else {
      tftpServer = s.option66;
      tftpServerSource = 'option66';
    }
  } else if (s.serverId) {
    tftpServer = s.serverId;
    tftpServerSource = 'option54';
  }
  if (bootUsable) {
    // siaddr 0.0.0.0 (dnsmasq's proxy offers) names no server, so it cannot disagree.
    const distinct = new Set(
      [s.siaddr === '0.0.0.0' ? undefined : s.siaddr, s.serverId, s.option66].filter((x): x is string => x !== undefined),
    );
    if (distinct.size > 1) {
      warnings.push(
        `siaddr ${s.siaddr}, option 54 ${s.serverId ?? '-'} and option 66 ${s.option66 ?? '-'} disagree (boot-net.adoc: make them agree); using ${tftpServer} from ${tftpServerSource}`,
      );
    }
  }
  if (hasAddress) {
    if (s.leaseTime === undefined) warnings.push('no option 51 (lease time), a MUST in an OFFER');
    if (!s.subnetMask) warnings.push('no option 1 (subnet mask) although the Pi asks for it');
  }
  if (s.length < 300) warnings.push(`reply is ${s.length} bytes, under the 300-byte minimum (dnsmasq's MIN_PACKETSZ)`);
  return { addressUsable, bootUsable: bootUsable && tftpServer !== undefined, reasons, warnings, tftpServer, tftpServerSource };
}
