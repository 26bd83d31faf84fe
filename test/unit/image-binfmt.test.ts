// Architecture arguments and binfmt registration (against a fake binfmt_misc
// directory: the real one is shared by the whole machine).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseArchList } from '../../server/image/arch.js';
import { ensureBinfmt, type BinfmtPaths } from '../../server/image/binfmt.js';

describe('--arch', () => {
  it('accepts a comma-separated list and drops repeats', () => {
    expect(parseArchList('amd64, arm64,amd64')).toEqual(['amd64', 'arm64']);
    expect(parseArchList('armhf')).toEqual(['armhf']);
  });
  it('names a bad value and the allowed ones', () => {
    expect(() => parseArchList('amd64,x86_64')).toThrow('--arch: unknown architecture "x86_64"; allowed: amd64, arm64, armhf');
    expect(() => parseArchList(' , ')).toThrow('--arch: expected one or more of amd64, arm64, armhf');
  });
});

describe('binfmt', () => {
  let dir: string;
  let paths: BinfmtPaths;
  const line = (interp: string) => `:qemu-aarch64:M::\\x7fELF\\x02:\\xff\\xff:${interp}:OPF\n`;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'bf-binfmt-'));
    paths = { miscDir: path.join(dir, 'misc'), confDir: path.join(dir, 'binfmt.d') };
    mkdirSync(paths.miscDir);
    mkdirSync(paths.confDir);
    writeFileSync(path.join(paths.miscDir, 'register'), '');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('does nothing for a native-only build', () => {
    expect(ensureBinfmt(['amd64'], paths, 'amd64')).toEqual([]);
  });

  it("registers a missing qemu-aarch64 from qemu-user-static's binfmt.d line and says so", () => {
    const interp = path.join(dir, 'qemu-aarch64-static');
    writeFileSync(interp, '');
    writeFileSync(path.join(paths.confDir, 'qemu-aarch64.conf'), `# comment\n${line(interp)}`);
    expect(ensureBinfmt(['amd64', 'arm64'], paths, 'amd64')).toEqual(['binfmt: registered qemu-aarch64 for arm64 builds (it was missing)']);
    expect(readFileSync(path.join(paths.miscDir, 'register'), 'utf8')).toBe(line(interp).trimEnd());
  });

  it('leaves an enabled registration with the F flag alone', () => {
    writeFileSync(path.join(paths.miscDir, 'qemu-aarch64'), 'enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\n');
    expect(ensureBinfmt(['arm64'], paths, 'amd64')).toEqual([]);
  });

  it('refuses a registration without the F flag (build containers could not use it)', () => {
    writeFileSync(path.join(paths.miscDir, 'qemu-aarch64'), 'enabled\ninterpreter /usr/bin/qemu-aarch64\nflags: \n');
    expect(() => ensureBinfmt(['arm64'], paths, 'amd64')).toThrow(/without the F flag/);
  });

  it('without qemu-user-static: one message naming the package', () => {
    expect(() => ensureBinfmt(['armhf'], paths, 'amd64')).toThrow(
      `building for armhf on this amd64 host needs qemu-user binfmt (qemu-arm), and ${paths.confDir}/qemu-arm.conf is missing: install it with "apt-get install qemu-user-static"`,
    );
  });
});
