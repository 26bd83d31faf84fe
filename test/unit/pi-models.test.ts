// Per-model Raspberry Pi boot files: the config.txt each model and arch gets, the
// piModel rule (given, or settled by the MAC, or refused), and `config check`
// refusing a Pi node whose published image lacks a file its model boots from (the
// command itself: test/integration/pi-models.test.ts).
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { parseConfig } from '../../server/config/load.js';
import { findConfigNode, renderArtefact } from '../../server/cli/render.js';
import { piBootSet, piRequiredFiles } from '../../server/boot/files/pi-models.js';
import { piImageProblems } from '../../server/config/pi-image-check.js';
import { TemplateSet } from '../../server/config/templates.js';
import { GeneratedFileResolver } from '../../server/boot/files/generated.js';
import type { EffectiveNode } from '../../server/inventory/effective.js';

const BASE = {
  server: { address: '10.9.0.1', stateDir: '/tmp/unused' },
  dhcp: { mode: 'full', subnets: [{ cidr: '10.9.0.0/24', range: ['10.9.0.100', '10.9.0.150'] }] },
};

function configWith(nodes: Array<Record<string, unknown>>, extra: Record<string, unknown> = {}) {
  return stringify({ ...BASE, ...extra, nodes });
}

function configTxt(node: Record<string, unknown>): string {
  const config = parseConfig(configWith([{ hostname: 'pi', piSerial: '1234abcd', ...node }]), 'site.yaml');
  return renderArtefact(config, findConfigNode(config, 'pi'), 'config.txt');
}

const lines = (text: string) => text.split('\n').filter((l) => l.length > 0 && !l.startsWith('#'));

describe('config.txt per Raspberry Pi model and arch', () => {
  it.each([
    [3, 'arm64', ['arm_64bit=1', 'kernel=kernel8.img', 'initramfs initrd.img followkernel']],
    [3, 'armhf', ['arm_64bit=0', 'kernel=kernel7.img', 'initramfs initrd.img followkernel']],
    [4, 'arm64', ['arm_64bit=1', 'kernel=kernel8.img', 'initramfs initrd.img followkernel']],
    [4, 'armhf', ['arm_64bit=0', 'kernel=kernel7l.img', 'initramfs initrd.img followkernel']],
    // The Pi 5 boots its own kernel (Debian unstable's) with the initramfs built for it.
    [5, 'arm64', ['arm_64bit=1', 'kernel=kernel_2712.img', 'initramfs initrd_2712.img followkernel']],
  ] as const)('Pi %i %s', (piModel, arch, expected) => {
    const text = configTxt({ mac: 'dc:a6:32:01:02:03', piModel, arch });
    expect(text.split('\n')[0]).toBe(`# bootfarm: pi (Pi ${piModel}, serial 1234abcd), image bootfarm/${arch}`);
    expect(lines(text)).toEqual([...expected, 'enable_uart=1']);
  });

  it('the files each model needs from the image: firmware, its default device tree, kernel, initramfs', () => {
    const need = (model: 3 | 4 | 5, arch: 'arm64' | 'armhf') => {
      const set = piBootSet(model, arch);
      if ('refused' in set) throw new Error(set.refused);
      return piRequiredFiles(set);
    };
    expect(need(3, 'arm64')).toEqual(['bootcode.bin', 'start.elf', 'fixup.dat', 'bcm2710-rpi-3-b-plus.dtb', 'kernel8.img', 'initrd.img']);
    expect(need(3, 'armhf')).toContain('kernel7.img');
    expect(need(4, 'arm64')).toEqual(['start4.elf', 'fixup4.dat', 'bcm2711-rpi-4-b.dtb', 'kernel8.img', 'initrd.img']);
    expect(need(4, 'armhf')).toContain('kernel7l.img');
    expect(need(5, 'arm64')).toEqual(['bcm2712-rpi-5-b.dtb', 'kernel_2712.img', 'initrd_2712.img']);
  });
});

describe('piModel', () => {
  it('a Pi whose MAC is b8:27:eb (every Pi 3 ROM) is a Pi 3B+ without saying so', () => {
    expect(lines(configTxt({ mac: 'b8:27:eb:01:02:03' }))).toContain('kernel=kernel8.img');
    expect(configTxt({ mac: 'b8:27:eb:01:02:03' })).toContain('(Pi 3, serial 1234abcd)');
  });

  it('a Pi whose MAC leaves the model open must name it: no silent Pi 4', () => {
    expect(() => parseConfig(configWith([{ mac: 'dc:a6:32:01:02:03', hostname: 'pi', piSerial: '1234abcd' }]), 'site.yaml')).toThrow(
      /^site\.yaml:\d+:\d+: nodes\[0\]\.piModel: expected 3, 4 or 5 for this Raspberry Pi \(piSerial 1234abcd\): its MAC dc:a6:32:01:02:03 does not settle the model/,
    );
  });

  it('a Pi 5 with an armhf image is refused: it boots only 64-bit kernels', () => {
    expect(() =>
      parseConfig(configWith([{ mac: 'dc:a6:32:01:02:03', hostname: 'pi', piSerial: '1234abcd', piModel: 5, arch: 'armhf' }]), 'site.yaml'),
    ).toThrow(/nodes\[0\]\.arch: a Pi 5 boots only 64-bit kernels \(kernel_2712\.img\); expected arch arm64, got armhf/);
  });
});

describe('config check: the Pi firmware in the published image', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-pi-models-'));
  const rpi = path.join(dir, 'images/base/v1/arm64/rpi');
  mkdirSync(rpi, { recursive: true });
  symlinkSync('v1', path.join(dir, 'images/base/current'));
  // What Debian bookworm's 6.1 kernel gives: Pi 3 and Pi 4 files, no bcm2712 DTB, no kernel_2712.img.
  for (const f of ['bootcode.bin', 'start.elf', 'fixup.dat', 'start4.elf', 'fixup4.dat', 'bcm2710-rpi-3-b-plus.dtb', 'bcm2711-rpi-4-b.dtb'])
    writeFileSync(path.join(rpi, f), f);
  writeFileSync(path.join(rpi, 'kernel8.img'), 'kernel');
  writeFileSync(path.join(rpi, 'initrd.img'), 'initrd');
  const problems = (nodes: Array<Record<string, unknown>>) => {
    const config = parseConfig(configWith(nodes, { images: { dir: path.join(dir, 'images'), default: 'base' } }), 'site.yaml');
    return piImageProblems(
      config,
      config.nodes.map((n) => findConfigNode(config, n.mac)),
    ).map((p) => `${p.key}: ${p.message}`);
  };
  const pis = [
    { mac: 'b8:27:eb:00:00:03', hostname: 'pi3', piSerial: '00000003', piModel: 3 },
    { mac: 'dc:a6:32:00:00:04', hostname: 'pi4', piSerial: '00000004', piModel: 4 },
  ];

  it('Pi 3B+ and Pi 4 nodes pass; a Pi 5 is refused, naming what its image lacks', () => {
    expect(problems(pis)).toEqual([]);
    const pi5 = { mac: '2c:cf:67:00:00:05', hostname: 'pi5', piSerial: '00000005', piModel: 5 };
    expect(problems([pi5, ...pis])).toEqual([
      `nodes[0]: pi5 is a Pi 5 (arm64), but image base/arm64 has no rpi/bcm2712-rpi-5-b.dtb, rpi/kernel_2712.img, rpi/initrd_2712.img (in ${path.join(dir, 'images/base/current/arm64')}); rebuild the image with a kernel and firmware for this model, or give the node another image`,
    ]);
  });

  it('a Pi 3B+ needs bootcode.bin, a Pi 4 start4.elf; an image not published yet is not judged', () => {
    rmSync(path.join(rpi, 'bootcode.bin'));
    rmSync(path.join(rpi, 'start4.elf'));
    const got = problems(pis);
    expect(got[0]).toMatch(/^nodes\[0\]: pi3 is a Pi 3B\+ \(arm64\), but image base\/arm64 has no rpi\/bootcode\.bin \(/);
    expect(got[1]).toMatch(/^nodes\[1\]: pi4 is a Pi 4 \(arm64\), but image base\/arm64 has no rpi\/start4\.elf \(/);
    expect(problems(pis.map((n) => ({ ...n, image: 'not-built-yet' })))).toEqual([]);
  });
});

describe("a Pi node's config.txt over TFTP/HTTP", () => {
  // A node added through the API may have no piModel: it gets no guessed config.txt.
  const config = parseConfig(configWith([]), 'site.yaml');
  const live = { config, templates: new TemplateSet(undefined) };
  const resolve = (node: Partial<EffectiveNode>) => {
    const pi = {
      ...findConfigNode(
        parseConfig(configWith([{ mac: 'dc:a6:32:01:02:03', hostname: 'pi', piSerial: '1234abcd', piModel: 4 }]), 'site.yaml'),
        'pi',
      ),
      ...node,
    };
    const nodes = { byMac: () => undefined, byPiSerial: () => pi, byAddress: () => pi };
    return new GeneratedFileResolver(live, nodes).resolve({ path: '1234abcd/config.txt', clientAddress: '10.9.0.50', protocol: 'tftp' });
  };

  it('is served for a node whose model is known, and refused, saying why, for one whose model is not', async () => {
    expect(await resolve({ piModel: 5 })).toMatchObject({ found: true });
    expect(await resolve({ piModel: undefined })).toEqual({
      found: false,
      denied: false,
      detail:
        'pi: piModel is not set and its MAC dc:a6:32:01:02:03 does not settle it (only b8:27:eb is one model, the Pi 3B+); expected piModel 3, 4 or 5',
    });
    expect(await resolve({ piModel: undefined, mac: 'b8:27:eb:01:02:03' })).toMatchObject({ found: true });
  });
});
