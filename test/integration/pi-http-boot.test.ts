// Raspberry Pi 4/5 HTTP boot against a real bootfarm in test namespaces: the
// EEPROM settings and public key from `bootfarm pi eeprom-config`, the scripted
// EEPROM in HTTP mode (server/lab/pi/http-phase.ts) fetching boot.sig and
// boot.img as the node and checking them as the bootloader does, curl and openssl
// as independent peers (openssl verifies the signature as rpi-eeprom-digest -v
// does), mtools reading the FAT image. A tampered image and an image signed by
// another key are refused; a new key gives a new signature; a new image version
// gives a new image; an address that is not the node's gets nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { NetLab, type LabHost } from '../../server/lab/netlab.js';
import { run } from '../../server/lab/proc.js';
import { CLI, nodeArgs, REPO_ROOT, startBootfarm, type BootfarmProcess } from '../lib/bootfarm.js';
import { httpPhase, type HttpPhaseReport } from '../../server/lab/pi/http-phase.js';
import { decodeBootSig, encodeBootSig } from '../../server/pi/boot-sig.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const PHASE = path.join(REPO_ROOT, 'server/lab/pi-http-boot-main.ts');
const PI4 = {
  mac: 'dc:a6:32:01:02:03',
  hostname: 'pi-four',
  arch: 'arm64',
  piSerial: '1234abcd',
  piModel: 4,
  piBoot: 'http',
  ip: '10.9.0.2',
};
const PI5 = {
  mac: '2c:cf:67:01:02:05',
  hostname: 'pi-five',
  arch: 'arm64',
  piSerial: '5555abcd',
  piModel: 5,
  piBoot: 'http',
  ip: '10.9.0.3',
};

describe('Pi 4/5 HTTP boot (boot.img + boot.sig)', () => {
  let lab: NetLab;
  let srv: LabHost;
  let pi4: LabHost;
  let pi5: LabHost;
  let server: BootfarmProcess;
  let work: string;
  let stateDir: string;
  let config: Record<string, unknown>;
  const files = new Map<string, Buffer>();

  /** A published image version as the image builder lays it out, with a Pi firmware set in rpi/. */
  const publish = (version: string) => {
    for (const name of [
      'start4.elf',
      'fixup4.dat',
      'bcm2711-rpi-4-b.dtb',
      'bcm2712-rpi-5-b.dtb',
      'kernel8.img',
      'kernel_2712.img',
      'initrd.img',
      'initrd_2712.img',
    ]) {
      const data = randomBytes(name.startsWith('kernel') ? 3 * 1024 * 1024 + 11 : 300 * 1024 + 7);
      const file = path.join(work, 'images/base', version, 'arm64/rpi', name);
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, data);
      files.set(`${version}/${name}`, data);
    }
    const link = path.join(work, 'images/base/current.new');
    symlinkSync(version, link);
    renameSync(link, path.join(work, 'images/base/current'));
  };

  // One CLI run per configuration file: each start of the CLI costs seconds on a loaded machine.
  const printed = new Map<string, { text: string; pem: string }>();
  const eepromConfig = async (configFile: string) => {
    const seen = printed.get(configFile);
    if (seen) return seen;
    const r = await run(process.execPath, nodeArgs(CLI, ['pi', 'eeprom-config', '--all', '--config', configFile]));
    expect(r.code, r.stderr).toBe(0);
    const pem = /-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----\n/.exec(r.stdout)?.[0];
    expect(pem).toBeDefined();
    printed.set(configFile, { text: r.stdout, pem: pem as string });
    return { text: r.stdout, pem: pem as string };
  };

  /** The scripted EEPROM, run in the node's namespace. */
  const bootAs = async (host: LabHost, node: typeof PI4, pem: string, expect: Record<string, string>) => {
    const dir = mkdtempSync(path.join(work, 'eeprom-'));
    writeFileSync(path.join(dir, 'pub.pem'), pem);
    const args = ['--host', '10.9.0.1', '--port', '8080', '--path', `pi/${node.piSerial}`, '--pubkey', path.join(dir, 'pub.pem')];
    args.push('--model', String(node.piModel), '--hostname', node.hostname, '--work', dir);
    for (const [name, digest] of Object.entries(expect)) args.push('--expect', `${name}=${digest}`);
    const r = await lab.exec(host.ns, process.execPath, nodeArgs(PHASE, args), 120_000);
    return { code: r.code, report: JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as HttpPhaseReport, stderr: r.stderr };
  };

  const curl = async (host: LabHost, url: string, out: string) => {
    const r = await lab.exec(host.ns, 'curl', ['-sS', '-o', out, '-w', '%{http_code}', url]);
    return r.stdout.trim();
  };

  const builtLogs = () => server.logs().filter((l) => l.msg === 'Pi HTTP boot image built');

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'bootfarm-pi-http-'));
    stateDir = path.join(work, 'state');
    mkdirSync(path.join(work, 'tftpboot'));
    publish('v1');
    lab = await NetLab.create('ph');
    srv = await lab.addHost('srv', { address: '10.9.0.1/24' });
    pi4 = await lab.addHost('pi4', { address: '10.9.0.2/24' });
    pi5 = await lab.addHost('pi5', { address: '10.9.0.3/24' });
    config = {
      server: { address: '10.9.0.1' },
      dhcp: { mode: 'off' },
      tftp: { root: path.join(work, 'tftpboot') },
      http: { port: 8080 },
      images: { dir: path.join(work, 'images'), default: 'base' },
      boot: { kernelArgs: 'console=ttyAMA0' },
      nodes: [PI4, PI5],
    };
    server = await startBootfarm(lab, srv.ns, config, stateDir);
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await lab?.destroy();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('prints the EEPROM settings: HTTP first in BOOT_ORDER, the serial prefix, this server and the node path', async () => {
    const { text } = await eepromConfig(server.configFile);
    const pi4Block = text.split('\n\n').find((b) => b.includes('# pi-four:')) ?? '';
    expect(pi4Block.split('\n').filter((l) => !l.startsWith('#'))).toEqual([
      '[all]',
      'BOOT_ORDER=0xf17',
      'TFTP_PREFIX=0',
      'HTTP_HOST=10.9.0.1',
      'HTTP_PORT=8080',
      'HTTP_PATH=pi/1234abcd',
      'NET_INSTALL_ENABLED=0',
    ]);
    expect(text).toContain('HTTP_PATH=pi/5555abcd');
  });

  it('the scripted Pi 4 and Pi 5 EEPROMs fetch, verify with the programmed key and find their own files', async () => {
    const { pem } = await eepromConfig(server.configFile);
    const four = await bootAs(pi4, PI4, pem, {
      'kernel8.img': sha(files.get('v1/kernel8.img') as Buffer),
      'initrd.img': sha(files.get('v1/initrd.img') as Buffer),
      'start4.elf': sha(files.get('v1/start4.elf') as Buffer),
      'bcm2711-rpi-4-b.dtb': sha(files.get('v1/bcm2711-rpi-4-b.dtb') as Buffer),
    });
    expect(four.report.failures).toEqual([]);
    expect(four.code, four.stderr).toBe(0);
    expect(four.report.signatureValid).toBe(true);
    expect(four.report.fatFiles).not.toContain('kernel_2712.img');
    expect(four.report.fatFiles).not.toContain('initrd_2712.img');
    expect(four.report.configTxt).toMatch(/^kernel=kernel8\.img$/m);
    // The boot's nonce is in the image, as in the cmdline.txt the TFTP path serves.
    expect(four.report.cmdline).toMatch(/bootfarm\.nonce=[A-Za-z0-9_-]{32}(\s|$)/);
    expect(four.report.cmdline).toContain('console=ttyAMA0');
    const five = await bootAs(pi5, PI5, pem, {
      'kernel_2712.img': sha(files.get('v1/kernel_2712.img') as Buffer),
      'initrd_2712.img': sha(files.get('v1/initrd_2712.img') as Buffer),
    });
    expect(five.report.failures).toEqual([]);
    expect(five.code).toBe(0);
    expect(five.report.fatFiles).not.toContain('start4.elf');
    // The Pi 5's kernel is its own (docs/design.md, "Raspberry Pi 5 kernels"), and so is its initramfs.
    expect(five.report.fatFiles).not.toContain('initrd.img');
    expect(five.report.configTxt).toMatch(/^initramfs initrd_2712\.img followkernel$/m);
    expect(five.report.configTxt).toMatch(/^kernel=kernel_2712\.img$/m);
  });

  it('boot.sig is what rpi-eeprom-digest writes, and openssl verifies it over the served boot.img', async () => {
    const dir = mkdtempSync(path.join(work, 'curl-'));
    expect(await curl(pi4, 'http://10.9.0.1:8080/pi/1234abcd/boot.sig', path.join(dir, 'boot.sig'))).toBe('200');
    expect(await curl(pi4, 'http://10.9.0.1:8080/pi/1234abcd/boot.img', path.join(dir, 'boot.img'))).toBe('200');
    const sigText = readFileSync(path.join(dir, 'boot.sig'), 'ascii');
    const lines = sigText.split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(lines[1]).toMatch(/^ts: \d+$/);
    expect(lines[2]).toMatch(/^rsa2048: [0-9a-f]{512}$/);
    expect(lines[3]).toBe('');
    const sum = await run('sha256sum', [path.join(dir, 'boot.img')]);
    expect(sum.stdout.split(' ')[0]).toBe(lines[0]);
    writeFileSync(path.join(dir, 'sig.bin'), Buffer.from((lines[2] as string).slice(9), 'hex'));
    writeFileSync(path.join(dir, 'pub.pem'), (await eepromConfig(server.configFile)).pem);
    const verified = await run('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      path.join(dir, 'pub.pem'),
      '-signature',
      path.join(dir, 'sig.bin'),
      path.join(dir, 'boot.img'),
    ]);
    expect(verified.stdout.trim()).toBe('Verified OK');
    // mtools reads the FAT image: the node's config.txt is the file the TFTP path serves.
    const env = { ...process.env, MTOOLS_SKIP_CHECK: '1' };
    const { execFileSync } = await import('node:child_process');
    const fatConfig = execFileSync('mcopy', ['-i', path.join(dir, 'boot.img'), '::/config.txt', '-'], { env }).toString();
    expect(await curl(pi4, 'http://10.9.0.1:8080/1234abcd/config.txt', path.join(dir, 'tftp-config.txt'))).toBe('200');
    expect(fatConfig).toBe(readFileSync(path.join(dir, 'tftp-config.txt'), 'utf8'));
  });

  it('refuses a tampered boot.img and one signed with another key', async () => {
    const dir = mkdtempSync(path.join(work, 'tamper-'));
    await curl(pi4, 'http://10.9.0.1:8080/pi/1234abcd/boot.sig', path.join(dir, 'boot.sig'));
    await curl(pi4, 'http://10.9.0.1:8080/pi/1234abcd/boot.img', path.join(dir, 'boot.img'));
    const realSig = readFileSync(path.join(dir, 'boot.sig'));
    const realImg = readFileSync(path.join(dir, 'boot.img'));
    const { pem } = await eepromConfig(server.configFile);
    // A man in the middle serves what it likes at the node's HTTP path.
    let served: { sig: Buffer; img: Buffer } = { sig: realSig, img: realImg };
    const mitm: Server = createServer((req, res) => {
      const body = req.url?.endsWith('/boot.sig') ? served.sig : req.url?.endsWith('/boot.img') ? served.img : undefined;
      res.writeHead(body ? 200 : 404).end(body);
    });
    await new Promise<void>((resolve) => mitm.listen(0, '127.0.0.1', resolve));
    const port = (mitm.address() as { port: number }).port;
    const boot = (): Promise<HttpPhaseReport> =>
      httpPhase({
        host: '127.0.0.1',
        port,
        path: 'pi/1234abcd',
        publicKeyPem: pem,
        model: 4,
        hostname: 'pi-four',
        workDir: mkdtempSync(path.join(dir, 'w-')),
      });
    try {
      expect((await boot()).ok).toBe(true);
      const kernel = files.get('v1/kernel8.img') as Buffer;
      const at = realImg.indexOf(kernel.subarray(0, 64));
      expect(at).toBeGreaterThan(0);
      const tampered = Buffer.from(realImg);
      tampered[at + 1000] = (tampered[at + 1000] as number) ^ 0xff;
      served = { sig: realSig, img: tampered };
      const refused = await boot();
      expect(refused.ok).toBe(false);
      expect(refused.failures.join()).toMatch(/is not the one boot\.sig gives.*refused/);
      expect(refused.fatFiles).toEqual([]);
      // The attacker recomputes the digest and signs it with a key of its own.
      const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
      const digest = createHash('sha256').update(tampered).digest();
      served = { sig: encodeBootSig({ sha256: digest, ts: 1, rsa2048: sign('sha256', tampered, attacker) }), img: tampered };
      const forged = await boot();
      expect(forged.ok).toBe(false);
      expect(forged.failures.join()).toMatch(/does not verify with the programmed public key/);
    } finally {
      await new Promise<void>((resolve) => mitm.close(() => resolve()));
    }
  });

  it('gives nothing to an address that is not the node', async () => {
    const out = path.join(work, 'stranger.img');
    expect(await curl(srv, 'http://10.9.0.1:8080/pi/1234abcd/boot.img', out)).toBe('403');
    expect(await curl(srv, 'http://10.9.0.1:8080/pi/1234abcd/boot.sig', out)).toBe('403');
    expect(await curl(pi5, 'http://10.9.0.1:8080/pi/1234abcd/boot.sig', out)).toBe('403');
  });

  it('serves the built image from its cache, and builds anew when the image version changes', async () => {
    const before = builtLogs().length;
    const { pem } = await eepromConfig(server.configFile);
    const again = await bootAs(pi4, PI4, pem, {});
    expect(again.code).toBe(0);
    expect(builtLogs().length).toBe(before);
    publish('v2');
    const next = await bootAs(pi4, PI4, pem, { 'kernel8.img': sha(files.get('v2/kernel8.img') as Buffer) });
    expect(next.report.failures).toEqual([]);
    expect(builtLogs().length).toBe(before + 1);
    expect(next.report.cmdline).toContain('bootfarm.export=base/v2/arm64');
  });

  it("builds anew when the node's configuration changes (a reload)", async () => {
    const before = builtLogs().length;
    const { pem } = await eepromConfig(server.configFile);
    const changed = { ...config, nodes: [{ ...PI4, kernelArgs: 'quiet loglevel=3' }, PI5] };
    writeFileSync(server.configFile, stringify({ ...changed, server: { address: '10.9.0.1', stateDir }, log: { level: 'debug' } }));
    const since = server.bg.lines.length;
    server.bg.child.kill('SIGHUP');
    await server.waitForLog((l) => l.msg === 'configuration reloaded', 30_000, 'configuration reloaded', since);
    const next = await bootAs(pi4, PI4, pem, {});
    expect(next.report.failures).toEqual([]);
    expect(next.report.cmdline).toMatch(/ quiet loglevel=3/);
    expect(builtLogs().length).toBe(before + 1);
    config = changed;
  });

  it('signs with a new key once the key changes: the old public key no longer verifies', async () => {
    const oldPem = (await eepromConfig(server.configFile)).pem;
    const dir = mkdtempSync(path.join(work, 'rekey-'));
    await curl(pi4, 'http://10.9.0.1:8080/pi/1234abcd/boot.sig', path.join(dir, 'old.sig'));
    await server.stop();
    // The operator's own key replaces the generated one.
    const keyFile = path.join(work, 'operator-key.pem');
    writeFileSync(keyFile, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }), {
      mode: 0o600,
    });
    server = await startBootfarm(lab, srv.ns, { ...config, pi: { signingKey: keyFile } }, stateDir);
    const newPem = (await eepromConfig(server.configFile)).pem;
    expect(newPem).not.toBe(oldPem);
    await curl(pi4, 'http://10.9.0.1:8080/pi/1234abcd/boot.sig', path.join(dir, 'new.sig'));
    const oldSig = decodeBootSig(readFileSync(path.join(dir, 'old.sig')));
    const newSig = decodeBootSig(readFileSync(path.join(dir, 'new.sig')));
    expect(oldSig.ok && newSig.ok).toBe(true);
    if (!oldSig.ok || !newSig.ok) return;
    expect(newSig.sig.rsa2048?.equals(oldSig.sig.rsa2048 as Buffer)).toBe(false);
    expect((await bootAs(pi4, PI4, newPem, {})).code).toBe(0);
    const withOld = await bootAs(pi4, PI4, oldPem, {});
    expect(withOld.code).toBe(1);
    expect(withOld.report.failures.join()).toMatch(/does not verify with the programmed public key/);
  });

  it('config check names the problem when a piBoot: http node has no usable key', async () => {
    const file = path.join(work, 'nokey.yaml');
    writeFileSync(file, stringify({ ...config, server: { address: '10.9.0.1', stateDir }, pi: { signingKey: './missing.pem' } }));
    const r = await run(process.execPath, nodeArgs(CLI, ['config', 'check', file]));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /nokey\.yaml:\d+:\d+: pi\.signingKey: piBoot: http \(pi-four\) needs a usable signing key: cannot read .*missing\.pem: ENOENT/,
    );
    writeFileSync(
      path.join(work, 'small.pem'),
      generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    writeFileSync(file, stringify({ ...config, server: { address: '10.9.0.1', stateDir }, pi: { signingKey: './small.pem' } }));
    const small = await run(process.execPath, nodeArgs(CLI, ['config', 'check', file]));
    expect(small.code).toBe(2);
    expect(small.stderr).toMatch(/RSA-1024 key, expected RSA-2048/);
  });
});
