// The Pi 5 kernel's fallback (imagebuild/pi5kernel/pi5-kernel.sh, run in the image
// build's pi5kernel stage): which unstable kernel a build takes from the arm64
// Packages index when the pinned one has left the archive, and what an unpacked
// kernel must have for a Pi 5. Fake indexes and trees; the real archive is the
// image build's (test/integration/imagebuild.test.ts).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../lib/bootfarm.js';

const SCRIPT = path.join(REPO_ROOT, 'imagebuild/pi5kernel/pi5-kernel.sh');
const PINNED = ['7.2.13+deb14-arm64', '7.2.13-1'] as const;

function sh(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('sh', [SCRIPT, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A Packages paragraph per [name, version]. */
function packages(entries: Array<[string, string]>): string {
  return entries.map(([p, v]) => `Package: ${p}\nSource: linux\nVersion: ${v}\nArchitecture: arm64\nDepends: kmod\n`).join('\n');
}

/** linux-image- and the three packages the stage downloads, for one kernel. */
const kernel = (abi: string, version: string): Array<[string, string]> =>
  ['image', 'base', 'binary', 'modules'].map((p) => [`linux-${p}-${abi}`, version]);

describe('pi5-kernel candidates', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), 'bf-pi5k-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const index = (entries: Array<[string, string]>) => {
    const file = path.join(dir, 'Packages');
    writeFileSync(file, packages(entries));
    return file;
  };

  it('takes the pinned kernel alone while unstable has it, and says nothing', () => {
    const r = sh('candidates', ...PINNED, index([...kernel('7.2.13+deb14-arm64', '7.2.13-1'), ...kernel('7.3.2+deb14-arm64', '7.3.2-1')]));
    expect(r).toEqual({ code: 0, stdout: '7.2.13+deb14-arm64 7.2.13-1\n', stderr: '' });
  });

  it('once the pin is gone: the plain arm64 kernels with all three packages, newest first by Debian version order, said in one line', () => {
    const r = sh(
      'candidates',
      ...PINNED,
      index([
        ...kernel('7.2.13+deb14-arm64', '7.2.13-2'), // the same ABI rebuilt: the pinned version is gone
        ...kernel('7.3.2+deb14-arm64', '7.3.2-1'),
        ...kernel('7.3.10+deb14-arm64', '7.3.10-1~exp1'), // newer than 7.3.2 although "1~exp1" < "1"
        ...kernel('7.4.0+deb14-rt-arm64', '7.4.0-1'), // another flavour
        ...kernel('7.4.0+deb14-cloud-arm64', '7.4.0-1'),
        ['linux-image-7.4.0+deb14-arm64-unsigned', '7.4.0-1'],
        ['linux-image-7.4.1+deb14-arm64', '7.4.1-1'], // its modules are not in the index (yet)
        ['linux-image-arm64', '7.3.10-1~exp1'], // the metapackage
      ]),
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('7.3.10+deb14-arm64 7.3.10-1~exp1\n7.3.2+deb14-arm64 7.3.2-1\n7.2.13+deb14-arm64 7.2.13-2\n');
    expect(r.stderr).toBe(
      'pi5kernel: the pinned kernel 7.2.13+deb14-arm64 (7.2.13-1) is gone from unstable; trying the newest linux-image-*-arm64 there instead: 7.3.10+deb14-arm64 7.3.10-1~exp1, 7.3.2+deb14-arm64 7.3.2-1, 7.2.13+deb14-arm64 7.2.13-2\n',
    );
  });

  it('the pin half gone (its modules package left) counts as gone', () => {
    const r = sh(
      'candidates',
      ...PINNED,
      index([...kernel('7.2.13+deb14-arm64', '7.2.13-1').slice(0, 3), ...kernel('7.3.2+deb14-arm64', '7.3.2-1')]),
    );
    expect(r.stdout).toBe('7.3.2+deb14-arm64 7.3.2-1\n');
  });

  it('fails naming what it looked for when unstable has no such kernel', () => {
    const r = sh(
      'candidates',
      ...PINNED,
      index([
        ['linux-image-7.4.1+deb14-arm64', '7.4.1-1'],
        ['busybox', '1:1.37.0-4'],
      ]),
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('the pinned kernel 7.2.13+deb14-arm64 (7.2.13-1) is gone from unstable');
    expect(r.stderr).toContain('unstable has no linux-image-*-arm64 with its linux-base-, linux-binary- and linux-modules- packages');
  });
});

describe('pi5-kernel check', () => {
  let root: string;
  const abi = '7.3.2+deb14-arm64';
  const mods = () => path.join(root, 'usr/lib/modules', abi);
  const put = (rel: string, text = '') => {
    mkdirSync(path.dirname(path.join(mods(), rel)), { recursive: true });
    writeFileSync(path.join(mods(), rel), text);
  };
  beforeEach(() => (root = mkdtempSync(path.join(tmpdir(), 'bf-pi5k-root-'))));
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('a kernel with the bcm2712 device tree and the RP1 Ethernet path passes; module files in either spelling, or built in', () => {
    put('dtb/broadcom/bcm2712-rpi-5-b.dtb');
    put('kernel/drivers/misc/rp1/rp1_pci.ko.xz');
    put('kernel/drivers/clk/clk-rp1.ko.xz');
    put('kernel/drivers/pinctrl/pinctrl-rp1.ko.xz');
    put('kernel/drivers/net/ethernet/cadence/macb.ko.xz');
    put('modules.builtin', 'kernel/drivers/irqchip/irq-bcm2712-mip.ko\n');
    expect(sh('check', root, abi)).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it("one without them fails naming each missing piece (trixie's 6.12: the tree but no RP1)", () => {
    put('dtb/broadcom/bcm2712-rpi-5-b.dtb');
    put('kernel/drivers/net/ethernet/cadence/macb.ko.xz');
    expect(sh('check', root, abi)).toEqual({ code: 1, stdout: 'rp1_pci clk_rp1 pinctrl_rp1 irq_bcm2712_mip\n', stderr: '' });
    rmSync(path.join(mods(), 'dtb'), { recursive: true });
    expect(sh('check', root, abi).stdout).toBe('bcm2712-rpi-5-b.dtb rp1_pci clk_rp1 pinctrl_rp1 irq_bcm2712_mip\n');
  });
});
