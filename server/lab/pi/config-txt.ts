// The config.txt the firmware reads decides which files it fetches next: this reads
// the keys that matter for that, with the [piN]/[0xSERIAL] filters. Pure.
import type { PiModel } from './model.js';

export interface PiConfig {
  kernel: string | undefined;
  initramfs: string | undefined;
  autoInitramfs: boolean;
  deviceTree: string | undefined;
  cmdline: string | undefined;
  overlays: string[];
  osPrefix: string;
  overlayPrefix: string;
  arm64bit: boolean | undefined;
}

/**
 * The subset of config.txt that decides which files the firmware fetches:
 * kernel=, initramfs FILE [followkernel], auto_initramfs=, device_tree=, cmdline=,
 * dtoverlay=, os_prefix=, overlay_prefix=, arm_64bit=. Conditional sections:
 * [all], [none], [piN] (N = the model), [0xSERIAL]; other filters are treated as
 * true. The last value wins.
 */
export function parseConfigTxt(text: string, model: PiModel, serial?: number): PiConfig {
  const cfg: PiConfig = {
    kernel: undefined,
    initramfs: undefined,
    autoInitramfs: false,
    deviceTree: undefined,
    cmdline: undefined,
    overlays: [],
    osPrefix: '',
    overlayPrefix: 'overlays/',
    arm64bit: undefined,
  };
  let modelOk = true;
  let serialOk = true;
  let none = false;
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.replace(/#.*$/, '').trim();
    if (!line) continue;
    const section = /^\[([^\]]*)\]$/.exec(line);
    if (section) {
      const f = (section[1] as string).trim().toLowerCase();
      if (f === 'all') {
        modelOk = true;
        serialOk = true;
        none = false;
      } else if (f === 'none') none = true;
      else if (/^(pi|cm)\d/.test(f) || f === 'pi400' || f === 'pi500') modelOk = f === `pi${model}`;
      else if (/^0x[0-9a-f]+$/.test(f)) serialOk = serial !== undefined && Number.parseInt(f, 16) >>> 0 === serial >>> 0;
      continue;
    }
    if (none || !modelOk || !serialOk) continue;
    const ramfs = /^initramfs\s+(\S+)/i.exec(line);
    if (ramfs) {
      cfg.initramfs = ramfs[1];
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq).trim().toLowerCase();
    const value = line.slice(eq + 1).trim();
    switch (key) {
      case 'kernel':
        cfg.kernel = value || undefined;
        break;
      case 'initramfs':
        cfg.initramfs = value.split(/\s+/)[0] || undefined;
        break;
      case 'auto_initramfs':
        cfg.autoInitramfs = value === '1';
        break;
      case 'device_tree':
        cfg.deviceTree = value;
        break;
      case 'cmdline':
        cfg.cmdline = value || undefined;
        break;
      case 'os_prefix':
        cfg.osPrefix = value;
        break;
      case 'overlay_prefix':
        cfg.overlayPrefix = value;
        break;
      case 'arm_64bit':
        cfg.arm64bit = value !== '0';
        break;
      case 'dtoverlay': {
        const name = value.split(',')[0]?.trim() ?? '';
        if (name) cfg.overlays.push(name);
        break;
      }
      default:
        break;
    }
  }
  return cfg;
}

/** auto_initramfs: kernel8.img -> initramfs8, kernel_2712.img -> initramfs_2712. */
export function autoInitramfsName(kernel: string): string | undefined {
  const m = /^(.*\/)?kernel([^./]*)\.img$/.exec(kernel);
  return m ? `${m[1] ?? ''}initramfs${m[2] ?? ''}` : undefined;
}
