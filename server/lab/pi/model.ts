// What makes one Pi: the per-model profile (FourCC, board revision, DTB, kernel
// names, blksize) and the identity it announces (MAC, serial), with the text forms
// the command line and the TFTP prefix use.

export type PiModel = 4 | 5;

export interface PiModelProfile {
  model: PiModel;
  /** FourCC as text and as the little-endian u32 the EEPROM writes into option 97. */
  fourcc: string;
  fourccValue: number;
  /** Default board revision (option 97 bytes 4..7, LE). */
  boardRevision: number;
  dtb: string;
  /** Kernel names tried in order when config.txt has no kernel=. */
  defaultKernels: string[];
  /** TFTP blksize the EEPROM asks for. */
  blksize: number;
}

export const PI_MODELS: Readonly<Record<PiModel, PiModelProfile>> = {
  4: {
    model: 4,
    fourcc: 'RPi4',
    fourccValue: 0x34695052,
    boardRevision: 0x00c03111,
    dtb: 'bcm2711-rpi-4-b.dtb',
    defaultKernels: ['kernel8.img'],
    blksize: 1024,
  },
  5: {
    model: 5,
    fourcc: 'RPi5',
    fourccValue: 0x35695052,
    boardRevision: 0x00d04170,
    dtb: 'bcm2712-rpi-5-b.dtb',
    defaultKernels: ['kernel_2712.img', 'kernel8.img'],
    blksize: 1468,
  },
};

/** "dc:a6:32:01:02:03" (or with dashes) to 6 bytes; throws on anything else. */
function parseMac(text: string): Buffer {
  const m = /^([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})[:-]([0-9a-f]{2})$/i.exec(text.trim());
  if (!m) throw new Error(`not a MAC address: ${JSON.stringify(text)}`);
  return Buffer.from(m.slice(1, 7).join(''), 'hex');
}

export function formatMac(mac: Buffer, sep = ':'): string {
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join(sep);
}

/** The serial as the EEPROM uses it: 8 hex digits (a 16-digit serial keeps its low 8). */
function parseSerial(text: string): number {
  const t = text.trim().toLowerCase().replace(/^0x/, '');
  if (!/^[0-9a-f]{1,16}$/.test(t)) throw new Error(`--serial must be hex digits (8 as in the TFTP prefix), got ${JSON.stringify(text)}`);
  return Number.parseInt(t.slice(-8), 16) >>> 0;
}

export function formatSerial(serial: number): string {
  return (serial >>> 0).toString(16).padStart(8, '0');
}

export interface PiIdentity {
  mac: Buffer;
  serial: number;
  model: PiModel;
  boardRevision: number;
}

export function makeIdentity(mac: string, serial: string, model: PiModel = 4, boardRevision?: number): PiIdentity {
  return { mac: parseMac(mac), serial: parseSerial(serial), model, boardRevision: boardRevision ?? PI_MODELS[model].boardRevision };
}
