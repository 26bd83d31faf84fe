// `bootfarm config check` as operators run it (the built CLI and the sources):
// it reports the loader's problems and exits 2. Kept apart from config.test.ts,
// whose in-process checks are the mutation-testing tier (vitest.mutation.config.ts).
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { run } from '../../server/lab/proc.js';
import { CLI, nodeArgs, REPO_ROOT } from '../lib/bootfarm.js';

describe('configuration', () => {
  it('the built CLI (dist/, as users run it) finds its templates and checks the example', async () => {
    const built = path.join(REPO_ROOT, 'dist/server/cli/main.js');
    const r = await run(process.execPath, [built, 'config', 'check', path.join(REPO_ROOT, 'examples/bootfarm.yaml')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('bootfarm config check: ok exits 0, problems exit 2 on stderr, a missing file is named', async () => {
    const ok = await run(process.execPath, nodeArgs(CLI, ['config', 'check', path.join(REPO_ROOT, 'examples/bootfarm.yaml')]));
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('ok (dhcp full, subnets: 10.9.0.0/24, 2 nodes, ');

    const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-cfg-'));
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(bad, 'server: { address: 10.9.0.1, stateDir: s }\ndhcp: { mode: full }\n');
    const r = await run(process.execPath, nodeArgs(CLI, ['config', 'check', bad]));
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`bootfarm: ${bad}:2:7: dhcp.subnets: expected at least one subnet when dhcp.mode is full`);

    const missing = await run(process.execPath, nodeArgs(CLI, ['config', 'check', path.join(dir, 'nope.yaml')]));
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe(`bootfarm: ${path.join(dir, 'nope.yaml')}: cannot read the file (ENOENT)`);
  });
});

describe('boot.signingKey through the CLI', () => {
  it('config check names a certificate that is not the key’s; bootloaders signs iPXE with the key, then config check passes', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-cfg-sign-'));
    writeFileSync(path.join(dir, 'pass'), 'snakeoil\n');
    const other = path.join(dir, 'other.pem');
    await run('openssl', [
      'req',
      '-new',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      path.join(dir, 'o.key'),
      '-out',
      other,
      '-subj',
      '/CN=o',
    ]);
    const config = (cert: string) => {
      const file = path.join(dir, 'site.yaml');
      writeFileSync(
        file,
        `server: { address: 10.9.0.1, stateDir: ${dir}/state }
tftp: { root: ${dir}/tftpboot }
boot:
  signingKey: { key: /usr/share/ovmf/PkKek-1-snakeoil.key, cert: ${cert}, passphraseFile: pass }
nodes:
  - { mac: '52:54:00:5d:00:01', hostname: site-1, secureBoot: site }
`,
      );
      return file;
    };
    const wrong = await run(process.execPath, nodeArgs(CLI, ['config', 'check', config(other)]));
    expect(wrong.code).toBe(2);
    expect(wrong.stderr.trim()).toBe(
      `bootfarm: ${dir}/site.yaml: boot.signingKey.cert: ${other} (CN=o) is not the certificate of the key /usr/share/ovmf/PkKek-1-snakeoil.key: their public keys differ`,
    );
    const file = config('/usr/share/ovmf/PkKek-1-snakeoil.pem');
    const unsigned = await run(process.execPath, nodeArgs(CLI, ['config', 'check', file]));
    expect(unsigned.code).toBe(2);
    expect(unsigned.stderr).toContain(
      `${dir}/tftpboot/secureboot/ipxe-site.efi is missing, so not signed with /usr/share/ovmf/PkKek-1-snakeoil.pem`,
    );
    const installed = await run(process.execPath, nodeArgs(CLI, ['bootloaders', '--no-grub', '--config', file]));
    expect(installed.code, installed.stderr).toBe(0);
    expect(installed.stdout).toContain(
      `${dir}/tftpboot/secureboot/ipxe-site.efi <- ${dir}/tftpboot/ipxe.efi signed with /usr/share/ovmf/PkKek-1-snakeoil.key`,
    );
    const ok = await run(process.execPath, nodeArgs(CLI, ['config', 'check', file]));
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
  });
});
