// The files a Pi fetches over TFTP, in the EEPROM's order, and the verdict on them.
// Every RRQ is octet with `tsize 0 blksize 1024` (Pi 5: 1468). Pi 4 order:
// probe <serial>/start4.elf (abort after the OACK with ERROR 0 "Early terminate";
// if it is not found, <serial>/start.elf; neither found drops the prefix),
// config.txt, probes of pieeprom.sig and recover4.elf (absence tolerated),
// start4.elf, fixup4.dat, config.txt again, the DTB, overlays named by dtoverlay=
// (optional), cmdline.txt, the kernel (kernel= or kernel8.img) and the initramfs
// (initramfs / auto_initramfs). Pi 5: probe <serial>/config.txt (then the DTB;
// neither drops the prefix), config.txt, pieeprom.sig probe, cmdline.txt,
// bcm2712-rpi-5-b.dtb, kernel_2712.img (falling back to kernel8.img) or kernel=,
// initramfs. Pi 3B+ (after its ROM's bootcode.bin, server/lab/pi/rom-phase.ts): RRQs
// with `tsize 0` only, 512-byte blocks; probe <serial>/start.elf, then autoboot.txt,
// config.txt, recovery.elf, start.elf, fixup.dat, dt-blob.bin, cmdline.txt, the DTB
// (bcm2710-rpi-3-b-plus.dtb), overlays, kernel8.img with arm_64bit=1 (else
// kernel7.img), initramfs (raspberrypi/firmware#1012 and #1041 captures).
// How one file is transferred: server/lab/pi/tftp-transfer.ts.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { autoInitramfsName, parseConfigTxt, type PiConfig } from './config-txt.js';
import type { PiIdentity, PiModelProfile } from './model.js';
import { Aborted, DEFAULTS, type PiBootOptions } from './options.js';
import type { PiBootReport, TftpFileReport } from './report.js';
import { tftpTransfer } from './tftp-transfer.js';

function safeOutPath(outDir: string, requested: string): string {
  const parts = requested.split('/').filter((x) => x.length > 0);
  if (parts.some((x) => x === '..' || x === '.')) throw new Error(`refusing to save ${requested} (has . or .. components)`);
  return path.join(outDir, ...parts);
}

interface TftpPhaseParams {
  options: PiBootOptions;
  profile: PiModelProfile;
  id: PiIdentity;
  report: PiBootReport;
  log: (l: string) => void;
  warn: (w: string) => void;
  server: string;
  localAddress: string;
  /** undefined: the RRQs carry `tsize 0` only (the Pi 3's bootcode.bin). */
  blksize: number | undefined;
  prefixDir: string | undefined;
  required: string[];
  /** The Pi 3 ROM's own reads (server/lab/pi/rom-phase.ts): plain RRQs, no options, this sequence. */
  rom?: { sequence: string[] };
}

export async function tftpPhase(t: TftpPhaseParams): Promise<void> {
  const { options, profile, report, log, warn } = t;
  const model = profile.model;
  const closers: Array<Promise<void>> = [];
  // The verdict is on this phase's files: a Pi 3 runs two (ROM, then bootcode.bin).
  const firstFile = report.files.length;
  let config: PiConfig | undefined;
  const requiredSet = new Set(t.required);
  const isRequired = (name: string, role: string) => requiredSet.has(name) || requiredSet.has(`@${role}`);

  // The prefix is on for the probe, then stays only if the probe found it.
  let activePrefix = t.prefixDir;
  const pathFor = (name: string) => (activePrefix ? `${activePrefix}${name}` : name);

  const transfer = async (name: string, role: string, mode: 'probe' | 'fetch'): Promise<TftpFileReport> => {
    if (options.signal?.aborted) throw new Aborted('aborted');
    const requested = pathFor(name);
    const r = await tftpTransfer({
      server: t.server,
      port: options.tftpPort ?? DEFAULTS.tftpPort,
      localAddress: t.localAddress,
      path: requested,
      options: t.rom ? 'none' : t.blksize === undefined ? 'tsize' : 'tsize+blksize',
      blksize: t.blksize ?? 512,
      probe: mode === 'probe',
      retransmitMs: options.tftpTimeoutMs ?? DEFAULTS.tftpTimeoutMs,
      maxRetries: options.tftpRetries ?? DEFAULTS.tftpRetries,
      fileTimeoutMs: options.fileTimeoutMs ?? DEFAULTS.fileTimeoutMs,
      signal: options.signal,
    });
    closers.push(r.closed);
    const entry: TftpFileReport = {
      path: requested,
      name,
      role,
      mode,
      outcome: r.outcome,
      required: mode === 'fetch' && isRequired(name, role),
      bytes: r.bytes,
      sha256: r.sha256,
      tsize: r.tsize,
      blksize: r.blksize,
      blocks: r.blocks,
      rollovers: r.rollovers,
      durationMs: r.durationMs,
      serverPort: r.serverPort,
      retransmits: r.retransmits,
      duplicateData: r.duplicateData,
      strayPackets: r.strayPackets,
    };
    if (r.errorCode !== undefined) entry.errorCode = r.errorCode;
    if (r.errorMessage !== undefined) entry.errorMessage = r.errorMessage;
    for (const w of r.warnings) warn(`${requested}: ${w}`);
    if (r.outcome === 'ok' && r.data) {
      if (role === 'config') config = parseConfigTxt(r.data.toString('utf8'), model, t.id.serial);
      if (options.outDir) {
        const out = safeOutPath(options.outDir, requested);
        await mkdir(path.dirname(out), { recursive: true });
        await writeFile(out, r.data);
        entry.savedTo = out;
      }
    }
    report.files.push(entry);
    const rate = r.durationMs > 0 ? ` ${(r.bytes / 1048576 / (r.durationMs / 1000)).toFixed(1)} MiB/s` : '';
    log(
      `TFTP ${mode} ${requested}: ${r.outcome}${r.outcome === 'ok' ? ` ${r.bytes} bytes in ${r.durationMs} ms${rate}, tsize ${r.tsize ?? '-'}, blksize ${r.blksize}, rollovers ${r.rollovers}, sha256 ${r.sha256}` : ''}${r.errorMessage ? ` (${r.errorMessage})` : ''}`,
    );
    return entry;
  };

  const fetch = async (name: string, role: string): Promise<TftpFileReport> => {
    if (options.probeEach) {
      const probe = await transfer(name, role, 'probe');
      if (probe.outcome !== 'probe-aborted') return probe;
    }
    return transfer(name, role, 'fetch');
  };

  // --- Prefix probe (TFTP_PREFIX): an existence test aborted right after the OACK.
  if (t.prefixDir) {
    const candidates =
      model === 3
        ? [['start.elf', 'prefix-probe']]
        : model === 4
          ? [
              ['start4.elf', 'prefix-probe'],
              ['start.elf', 'prefix-probe'],
            ]
          : [
              ['config.txt', 'prefix-probe'],
              [profile.dtb, 'prefix-probe'],
            ];
    for (const [name, role] of candidates as Array<[string, string]>) {
      const probe = await transfer(name, role, 'probe');
      if (probe.outcome === 'probe-aborted') {
        report.prefixUsed = true;
        break;
      }
      if (probe.outcome === 'error') {
        report.failures.push(
          `prefix probe ${probe.path} failed: ${probe.errorMessage ?? 'error'} (expected an OACK, or ERROR 1 if the directory does not exist)`,
        );
        break;
      }
    }
    log(report.prefixUsed ? `prefix ${t.prefixDir} exists: every path carries it` : `prefix ${t.prefixDir} not found: dropped`);
  }
  activePrefix = report.prefixUsed ? t.prefixDir : undefined;

  const kernelNames = () => {
    const cfg = config;
    if (cfg?.kernel) return [`${cfg.osPrefix}${cfg.kernel}`];
    if (model !== 5 && cfg?.arm64bit === false) return [`${cfg.osPrefix}${profile.kernel32}`];
    if (model === 3 && cfg?.arm64bit === true) return [`${cfg.osPrefix}kernel8.img`];
    return profile.defaultKernels.map((k) => `${cfg?.osPrefix ?? ''}${k}`);
  };
  const dtbName = () => {
    const cfg = config;
    if (cfg?.deviceTree === '') return undefined;
    return `${cfg?.osPrefix ?? ''}${cfg?.deviceTree ?? profile.dtb}`;
  };
  let kernelFetched: string | undefined;

  const runToken = async (token: string): Promise<void> => {
    switch (token) {
      case '@kernel': {
        for (const k of kernelNames()) {
          const e = await fetch(k, 'kernel');
          if (e.outcome !== 'not-found') {
            kernelFetched = k;
            return;
          }
        }
        return;
      }
      case '@initramfs': {
        const cfg = config;
        let name = cfg?.initramfs ? `${cfg.osPrefix}${cfg.initramfs}` : undefined;
        if (!name && cfg?.autoInitramfs && kernelFetched) name = autoInitramfsName(kernelFetched);
        if (name) await fetch(name, 'initramfs');
        return;
      }
      case '@dtb': {
        const d = dtbName();
        if (d) await fetch(d, 'dtb');
        return;
      }
      case '@cmdline': {
        await fetch(`${config?.osPrefix ?? ''}${config?.cmdline ?? 'cmdline.txt'}`, 'cmdline');
        return;
      }
      case '@overlays': {
        const cfg = config;
        if (!cfg || cfg.overlays.length === 0) return;
        const dir = `${cfg.osPrefix}${cfg.overlayPrefix}`;
        await fetch(`${dir}overlay_map.dtb`, 'overlay');
        for (const o of cfg.overlays) await fetch(`${dir}${o}.dtbo`, 'overlay');
        return;
      }
      case '@probe-pieeprom': {
        await transfer('pieeprom.sig', 'update-probe', 'probe');
        return;
      }
      case '@probe-recovery': {
        await transfer('recover4.elf', 'recovery-probe', 'probe');
        return;
      }
      default: {
        const role =
          token === 'config.txt'
            ? 'config'
            : token === 'cmdline.txt'
              ? 'cmdline'
              : token.startsWith('start')
                ? 'firmware'
                : token.startsWith('fixup')
                  ? 'firmware'
                  : 'file';
        await fetch(token, role);
      }
    }
  };

  const sequence =
    t.rom?.sequence ??
    options.files ??
    (model === 3
      ? [
          // bootcode.bin's reads after its prefix probe (raspberrypi/firmware#1012, #1041 captures).
          'autoboot.txt',
          'config.txt',
          'recovery.elf',
          'start.elf',
          'fixup.dat',
          'dt-blob.bin',
          '@cmdline',
          '@dtb',
          '@overlays',
          '@kernel',
          '@initramfs',
        ]
      : model === 4
        ? [
            'config.txt',
            '@probe-pieeprom',
            '@probe-recovery',
            'start4.elf',
            'fixup4.dat',
            'config.txt',
            '@dtb',
            '@overlays',
            '@cmdline',
            '@kernel',
            '@initramfs',
          ]
        : ['config.txt', '@probe-pieeprom', '@cmdline', '@dtb', '@overlays', '@kernel', '@initramfs']);
  if (report.failures.length === 0) {
    for (const token of sequence) await runToken(token);
  }

  await Promise.all(closers);
  if (!t.rom) report.config = config;

  // --- Verdict
  const mine = report.files.slice(firstFile);
  const fetches = mine.filter((f) => f.mode === 'fetch');
  for (const f of mine) {
    if (f.outcome === 'error') report.failures.push(`${f.path}: ${f.errorMessage ?? 'transfer failed'}`);
  }
  for (const r of t.required) {
    // Probes of the prefix / update files do not count; with --probe-each a file's probe does.
    const matching = mine.filter((f) => !f.role.endsWith('-probe') && (f.name === r || `@${f.role}` === r));
    const good = matching.find((f) => f.mode === 'fetch' && f.outcome === 'ok');
    report.required.push({ name: r, satisfied: good !== undefined, path: good?.path ?? matching[0]?.path });
    if (!good && !(matching.length > 0 && matching.every((f) => f.outcome === 'error'))) {
      report.failures.push(
        matching.length === 0
          ? `required ${r} was never requested (not in the sequence)`
          : `required ${r} did not arrive: ${matching.map((f) => `${f.path} ${f.outcome}${f.errorMessage ? ` (${f.errorMessage})` : ''}`).join(', ')}`,
      );
    }
  }
  const configs = fetches.filter((f) => f.role === 'config' && f.outcome === 'ok');
  if (configs.length > 1 && new Set(configs.map((f) => f.sha256)).size > 1) warn('the two reads of config.txt returned different content');
}
