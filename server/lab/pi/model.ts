// What makes one Pi: the per-model profile (FourCC, board revision, DTB, kernel
// names, blksize) and the identity it announces (MAC, serial), with the text forms
// the command line and the TFTP prefix use.

/** The models with an EEPROM bootloader (option 97 FourCC, HTTP boot). */
export type EepromPiModel = 4 | 5;
/** Every model the stand-in plays: the Pi 3B+ boots from its ROM and bootcode.bin. */
export type PiModel = 3 | EepromPiModel;

export interface PiModelProfile {
  model: PiModel;
  /** FourCC as text and as the little-endian u32 the EEPROM writes into option 97; empty for the Pi 3B+ ROM, which writes its serial 4 times. */
  fourcc: string;
  fourccValue: number;
  /** Default board revision (option 97 bytes 4..7, LE; the Pi 3B+ sends none). */
  boardRevision: number;
  dtb: string;
  /** Kernel names tried in order when config.txt has no kernel= (and no arm_64bit=0). */
  defaultKernels: string[];
  /** The kernel with arm_64bit=0. */
  kernel32: string;
  /** TFTP blksize the bootloader asks for; undefined: none (the Pi 3's bootcode.bin asks tsize only, 512-byte blocks). */
  blksize: number | undefined;
}

export const PI_MODELS: Readonly<Record<PiModel, PiModelProfile>> = {
  // Pi 3B+ (revision a020d3). Its firmware's default device tree is the downstream
  // name; the image builder writes Debian's bcm2837 DTB under it (make-export.sh).
  3: {
    model: 3,
    fourcc: '',
    fourccValue: 0,
    boardRevision: 0x00a020d3,
    dtb: 'bcm2710-rpi-3-b-plus.dtb',
    // The Pi 3 firmware starts 32-bit unless arm_64bit=1 (then kernel8.img).
    defaultKernels: ['kernel7.img'],
    kernel32: 'kernel7.img',
    blksize: undefined,
  },
  4: {
    model: 4,
    fourcc: 'RPi4',
    fourccValue: 0x34695052,
    boardRevision: 0x00c03111,
    dtb: 'bcm2711-rpi-4-b.dtb',
    defaultKernels: ['kernel8.img'],
    kernel32: 'kernel7l.img',
    blksize: 1024,
  },
  5: {
    model: 5,
    fourcc: 'RPi5',
    fourccValue: 0x35695052,
    boardRevision: 0x00d04170,
    dtb: 'bcm2712-rpi-5-b.dtb',
    defaultKernels: ['kernel_2712.img', 'kernel8.img'],
    kernel32: 'kernel_2712.img',
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
