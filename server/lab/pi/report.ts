// The PI_BOOT_REPORT a run prints: one entry per TFTP transfer and the DHCP exchange.
import type { OfferSummary } from './dhcp-offer.js';
import type { PiConfig } from './config-txt.js';
import type { HttpPhaseReport } from './http-phase.js';
import type { PiModel } from './model.js';

export type FileOutcome = 'ok' | 'not-found' | 'probe-aborted' | 'error';

export interface TftpFileReport {
  /** The path as put in the RRQ (with the prefix when one is used). */
  path: string;
  /** The name without the prefix. */
  name: string;
  role: string;
  /** probe: aborted after the OACK on purpose; fetch: full transfer. */
  mode: 'probe' | 'fetch';
  outcome: FileOutcome;
  required: boolean;
  bytes: number;
  sha256: string | undefined;
  tsize: number | undefined;
  blksize: number | undefined;
  blocks: number;
  rollovers: number;
  durationMs: number;
  serverPort: number | undefined;
  errorCode?: number;
  errorMessage?: string;
  savedTo?: string;
  /** Retransmissions we made (RRQ or ACK) after a 1 s silence. */
  retransmits: number;
  duplicateData: number;
  strayPackets: number;
}

export interface PiBootReport {
  ok: boolean;
  failures: string[];
  warnings: string[];
  iface: string;
  mac: string;
  serial: string;
  model: PiModel;
  boardRevision: string;
  dhcp: {
    xid: string;
    broadcastFlag: boolean;
    discoversSent: number;
    discoverHex: string;
    offer: OfferSummary | undefined;
    /** A proxyDHCP offer the boot options came from, when they did not come with the address. */
    proxyOffer: OfferSummary | undefined;
    /** Offers not taken, once per distinct server and reasons, with how many times each came. */
    offersIgnored: Array<{ from: string; reasons: string[]; count: number }>;
    requestHex: string | undefined;
    ackReceived: boolean;
    ack: OfferSummary | undefined;
    nak: OfferSummary | undefined;
    leasedAddress: string | undefined;
    prefixLength: number | undefined;
    durationMs: number;
  };
  /** The Pi 3 ROM's own exchange, before bootcode.bin's (which is `dhcp`); absent for Pi 4/5. */
  romDhcp?: PiBootReport['dhcp'];
  tftpServer: string | undefined;
  tftpServerSource: 'option66' | 'option54' | 'override' | undefined;
  prefix: string | undefined;
  prefixUsed: boolean;
  config: PiConfig | undefined;
  files: TftpFileReport[];
  /** HTTP boot (options.http): boot.sig and boot.img, their checks, and the files taken out of the image. */
  http?: HttpPhaseReport;
  required: Array<{ name: string; satisfied: boolean; path: string | undefined }>;
  ipCommands: string[];
  durationMs: number;
}

/** A DHCP exchange's record before it starts. */
export function emptyDhcpReport(xid: number, broadcastFlag: boolean): PiBootReport['dhcp'] {
  return {
    xid: `0x${xid.toString(16).padStart(8, '0')}`,
    broadcastFlag,
    discoversSent: 0,
    discoverHex: '',
    offer: undefined,
    proxyOffer: undefined,
    offersIgnored: [],
    requestHex: undefined,
    ackReceived: false,
    ack: undefined,
    nak: undefined,
    leasedAddress: undefined,
    prefixLength: undefined,
    durationMs: 0,
  };
}
