// Every rendered artefact of an amd64 node, an arm64 UEFI node and a Pi 4,
// checked against reviewed golden files through the built CLI, as operators run
// it; and an imported lts.conf read back by the shell. (Moved from
// node-config.test.ts: spawning the CLI keeps these out of the in-process tier
// that mutation testing runs, vitest.mutation.config.ts.)
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../lib/bootfarm.js';

const FIXTURES = path.join(REPO_ROOT, 'test/fixtures/render');
const CLI = path.join(REPO_ROOT, 'dist/server/cli/main.js');

describe('rendered artefacts (golden files, built CLI)', () => {
  const expectedDir = path.join(FIXTURES, 'expected');
  const cases = readdirSync(expectedDir).map((file) => {
    const error = file.endsWith('.error');
    const base = error ? file.slice(0, -'.error'.length) : file;
    const node = base.slice(0, base.indexOf('.'));
    const artefact = base.slice(node.length + 1);
    return { file, node, artefact, error };
  });

  it('covers every artefact of the three nodes', () => {
    expect(cases).toHaveLength(18);
    expect(
      cases
        .filter((c) => !c.error)
        .map((c) => `${c.node}.${c.artefact}`)
        .sort(),
    ).toEqual([
      'arm-1.grub.cfg',
      'arm-1.ipxe',
      'arm-1.join',
      'arm-1.lts.conf',
      'node-1.grub.cfg',
      'node-1.ipxe',
      'node-1.join',
      'node-1.lts.conf',
      'pi-1.cmdline.txt',
      'pi-1.config.txt',
      'pi-1.grub.cfg',
      'pi-1.ipxe',
      'pi-1.lts.conf',
    ]);
  });

  it.each(cases)('$node $artefact', ({ file, node, artefact, error }) => {
    const run = spawnSync(process.execPath, [CLI, 'render', '-c', path.join(FIXTURES, 'bootfarm.yaml'), '-n', node, artefact], {
      encoding: 'utf8',
    });
    const expected = readFileSync(path.join(expectedDir, file), 'utf8');
    if (error) {
      expect(run.status).toBe(2);
      expect(run.stderr).toBe(expected);
    } else {
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout).toBe(expected);
    }
  });

  it('an imported lts.conf keeps its values byte for byte through the shell', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-lts-'));
    const file = path.join(dir, 'lts.conf');
    writeFileSync(file, readFileSync(path.join(expectedDir, 'node-1.lts.conf')));
    const show = (name: string) => execFileSync('sh', ['-c', `. "$1"; printf %s "$${name}"`, 'sh', file], { encoding: 'utf8' });
    expect(show('PREINIT_01_FIX_HOSTNAME')).toBe("sed -i '/^127.0.2.1/d' /etc/hosts");
    expect(show('RCFILE_01_SSH_SERVER')).toBe('cp /rofs/etc/ssh/*_config /etc/ssh; ssh-keygen -A');
    expect(show('LTS_PREINIT_KEYS')).toBe('PREINIT_00_TIME PREINIT_01_FIX_HOSTNAME PREINIT_2_MODULES PREINIT_10_MARK');
    // The 2018 static join line is gone (NONE in the profile); no token in any artefact.
    expect(show('RCFILE_07_JOIN_K8S')).toBe('');
  });
});
