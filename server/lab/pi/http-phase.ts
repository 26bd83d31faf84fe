// The scripted Pi 4/5 EEPROM in HTTP boot mode (BOOT_ORDER nibble 7): it fetches
// boot.sig and then boot.img from http://HTTP_HOST:HTTP_PORT/HTTP_PATH/ (the order
// boot-http.adoc's log shows), and boots the image only if the SHA-256 in boot.sig
// is the image's and boot.sig's RSA-2048 signature of it verifies with the public
// key programmed into the EEPROM (rpi-eeprom-config --pubkey). Then, as the
// firmware would read it, the FAT image is opened with mtools and checked against
// what the node's configuration says: config.txt's kernel and initramfs are there,
// the model's firmware and device tree, cmdline.txt names the node. Everything
// from the network is hostile: sizes are bounded, boot.sig is parsed strictly.
import { createHash, createPublicKey, verify } from 'node:crypto';
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseConfigTxt } from './config-txt.js';
import type { EepromPiModel as PiModel } from './model.js';

const exec = promisify(execFile);

export interface HttpPhaseOptions {
  /** HTTP_HOST, HTTP_PORT and HTTP_PATH as programmed into the EEPROM. */
  host: string;
  port: number;
  path: string;
  /** The public key programmed with `rpi-eeprom-config --pubkey` (PEM). */
  publicKeyPem: string;
  model: PiModel;
  /** The node's host name, which its cmdline.txt must carry (bootfarm.node=). */
  hostname: string;
  /** Where boot.img is kept for mtools. */
  workDir: string;
  /** Files of the node's image that must be in boot.img byte for byte: name -> sha256 hex. */
  expectFiles?: Record<string, string>;
  timeoutMs?: number;
  /** The largest boot.img accepted (the EEPROM loads it into RAM). */
  maxImageBytes?: number;
  /**
   * Copy the kernel, initramfs and cmdline.txt out of an accepted image into
   * workDir/boot/, as the firmware loads them from it (the lab boots them,
   * server/lab/pi-kernel-guest.ts).
   */
  extract?: boolean;
}

/** A file taken out of an accepted boot.img (HttpPhaseOptions.extract). */
interface ExtractedFile {
  role: 'kernel' | 'initramfs' | 'cmdline';
  /** Its name in the FAT image. */
  name: string;
  savedTo: string;
}

export interface HttpPhaseReport {
  ok: boolean;
  failures: string[];
  sig: { status: number; bytes: number; sha256: string | undefined; ts: number | undefined; signed: boolean };
  image: { status: number; bytes: number; sha256: string | undefined; savedTo: string | undefined };
  signatureValid: boolean;
  /** Paths in the FAT image, as mdir lists them. */
  fatFiles: string[];
  configTxt: string | undefined;
  cmdline: string | undefined;
  /** extract: what was copied out of the image (only from an image that passed every check). */
  extracted: ExtractedFile[];
  durationMs: number;
}

/**
 * boot.sig as the EEPROM reads it, parsed here on its own (not with bootfarm's
 * codec, server/pi/boot-sig.ts: this is the independent peer that checks it): the
 * first line the image's SHA-256 in hex, a `ts: <seconds>` line, and the signature
 * from the `rsa2048: <hex>` line, as rpi-eeprom-digest -v takes it.
 */
function readBootSig(data: Buffer): { sha256: Buffer; ts: number; rsa2048: Buffer | undefined } | string {
  if (data.length > 4096) return 'boot.sig is larger than 4096 bytes';
  const lines = data.toString('latin1').split('\n');
  if (lines.at(-1) === '') lines.pop();
  const [first, ...rest] = lines;
  if (first === undefined || !/^[0-9a-f]{64}$/.test(first)) return 'boot.sig: line 1 is not a SHA-256 in lower-case hex';
  let ts: number | undefined;
  let rsa2048: Buffer | undefined;
  for (const line of rest) {
    const tsMatch = /^ts: ([0-9]{1,15})$/.exec(line);
    const rsaMatch = /^rsa2048: ([0-9a-f]{512})$/.exec(line);
    if (tsMatch && ts === undefined) ts = Number(tsMatch[1]);
    else if (rsaMatch && rsa2048 === undefined) rsa2048 = Buffer.from(rsaMatch[1] as string, 'hex');
    else return `boot.sig: unexpected line ${JSON.stringify(line.slice(0, 80))}`;
  }
  if (ts === undefined) return 'boot.sig has no "ts: <unix time>" line';
  return { sha256: Buffer.from(first, 'hex'), ts, rsa2048 };
}

const REQUIRED: Record<PiModel, string[]> = { 4: ['start4.elf', 'fixup4.dat', 'bcm2711-rpi-4-b.dtb'], 5: ['bcm2712-rpi-5-b.dtb'] };

function get(opts: HttpPhaseOptions, file: string, limit: number): Promise<{ status: number; body: Buffer }> {
  const url = `/${opts.path.replace(/^\/+|\/+$/g, '')}/${file}`;
  return new Promise((resolve, reject) => {
    const req = request({ host: opts.host, port: opts.port, path: url, method: 'GET', timeout: opts.timeoutMs ?? 60_000 }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > limit) {
          req.destroy(new Error(`${file} is larger than ${limit} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within ${opts.timeoutMs ?? 60_000} ms`)));
    req.on('error', reject);
    req.end();
  });
}

async function mtools(cmd: 'mdir' | 'mcopy', args: string[]): Promise<string> {
  // MTOOLS_SKIP_CHECK: a bare FAT image has no partition table or geometry for mtools to check.
  const { stdout } = await exec(cmd, args, { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' }, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

export async function httpPhase(opts: HttpPhaseOptions): Promise<HttpPhaseReport> {
  const started = Date.now();
  const report: HttpPhaseReport = {
    ok: false,
    failures: [],
    sig: { status: 0, bytes: 0, sha256: undefined, ts: undefined, signed: false },
    image: { status: 0, bytes: 0, sha256: undefined, savedTo: undefined },
    signatureValid: false,
    fatFiles: [],
    configTxt: undefined,
    cmdline: undefined,
    extracted: [],
    durationMs: 0,
  };
  const fail = (why: string) => {
    report.failures.push(why);
    report.durationMs = Date.now() - started;
    return report;
  };
  const sigAnswer = await get(opts, 'boot.sig', 4096);
  report.sig.status = sigAnswer.status;
  report.sig.bytes = sigAnswer.body.length;
  if (sigAnswer.status !== 200) return fail(`boot.sig: HTTP ${sigAnswer.status}`);
  const sig = readBootSig(sigAnswer.body);
  if (typeof sig === 'string') return fail(sig);
  report.sig.sha256 = sig.sha256.toString('hex');
  report.sig.ts = sig.ts;
  report.sig.signed = sig.rsa2048 !== undefined;
  const imgAnswer = await get(opts, 'boot.img', opts.maxImageBytes ?? 512 * 1024 * 1024);
  report.image.status = imgAnswer.status;
  report.image.bytes = imgAnswer.body.length;
  if (imgAnswer.status !== 200) return fail(`boot.img: HTTP ${imgAnswer.status}`);
  const image = imgAnswer.body;
  const digest = createHash('sha256').update(image).digest();
  report.image.sha256 = digest.toString('hex');
  // The EEPROM's two checks: the digest is the image's, and the key it holds signed that digest.
  if (!digest.equals(sig.sha256))
    return fail(`boot.img's SHA-256 ${report.image.sha256} is not the one boot.sig gives (${report.sig.sha256}): refused`);
  if (!sig.rsa2048) return fail('boot.sig has no rsa2048 signature: a custom HTTP_HOST boots signed images only');
  report.signatureValid = verify('sha256', image, createPublicKey(opts.publicKeyPem), sig.rsa2048);
  if (!report.signatureValid) return fail('boot.sig: the rsa2048 signature does not verify with the programmed public key: refused');

  await mkdir(opts.workDir, { recursive: true });
  const imgFile = path.join(opts.workDir, 'boot.img');
  await writeFile(imgFile, image);
  report.image.savedTo = imgFile;
  report.fatFiles = (await mtools('mdir', ['-i', imgFile, '-b', '-/', '::/']))
    .split('\n')
    .map((l) => l.trim().replace(/^::\//, ''))
    .filter((l) => l.length > 0 && !l.endsWith('/'));
  const have = new Set(report.fatFiles.map((f) => f.toLowerCase()));
  const readText = async (name: string) =>
    have.has(name) ? (await mtools('mcopy', ['-i', imgFile, `::/${name}`, '-'])).toString() : undefined;
  report.configTxt = await readText('config.txt');
  report.cmdline = await readText('cmdline.txt');
  if (report.configTxt === undefined) return fail('boot.img has no config.txt');
  if (report.cmdline === undefined) return fail('boot.img has no cmdline.txt');
  const config = parseConfigTxt(report.configTxt, opts.model);
  for (const [what, name] of [
    ['kernel (config.txt kernel=)', config.kernel],
    ['initramfs (config.txt initramfs)', config.initramfs],
  ] as const) {
    if (name === undefined) report.failures.push(`config.txt names no ${what}`);
    else if (!have.has(name.toLowerCase())) report.failures.push(`config.txt names ${name} as its ${what}, boot.img lacks it`);
  }
  for (const name of REQUIRED[opts.model]) if (!have.has(name)) report.failures.push(`boot.img lacks ${name} (Pi ${opts.model} firmware)`);
  if (!report.cmdline.split(/\s+/).includes(`bootfarm.node=${opts.hostname}`))
    report.failures.push(`cmdline.txt does not name the node (bootfarm.node=${opts.hostname}): ${report.cmdline}`);
  for (const [name, sha] of Object.entries(opts.expectFiles ?? {})) {
    if (!have.has(name.toLowerCase())) {
      report.failures.push(`boot.img lacks ${name}`);
      continue;
    }
    const out = path.join(opts.workDir, `fat-${name.replace(/\//g, '_')}`);
    await mtools('mcopy', ['-i', imgFile, '-o', `::/${name}`, out]);
    const got = createHash('sha256')
      .update(await readFile(out))
      .digest('hex');
    if (got !== sha) report.failures.push(`boot.img's ${name} is not the node's (sha256 ${got}, expected ${sha})`);
  }
  report.ok = report.failures.length === 0;
  if (report.ok && opts.extract && config.kernel !== undefined && config.initramfs !== undefined) {
    const dir = path.join(opts.workDir, 'boot');
    await mkdir(dir, { recursive: true });
    for (const [role, name] of [
      ['kernel', config.kernel],
      ['initramfs', config.initramfs],
      ['cmdline', 'cmdline.txt'],
    ] as const) {
      // basename: config.txt is the server's text, and a name must not leave the directory.
      const savedTo = path.join(dir, path.basename(name));
      await mtools('mcopy', ['-i', imgFile, '-o', `::/${name}`, savedTo]);
      report.extracted.push({ role, name, savedTo });
    }
  }
  report.durationMs = Date.now() - started;
  return report;
}
