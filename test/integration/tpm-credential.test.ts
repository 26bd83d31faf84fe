// bootfarm's own TPM2_MakeCredential (server/tpm/make-credential.ts) against real
// TPMs: two swtpm instances driven by tpm2-tools. The TPM holding the EK recovers
// the credential; another TPM, or another key on the same TPM, does not; and the
// blob has the shape of what `tpm2_makecredential -T none` writes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NetLab } from '../../server/lab/netlab.js';
import { makeCredential, toolsCredentialFile } from '../../server/tpm/make-credential.js';
import { objectName, parsePublic } from '../../server/tpm/public-area.js';
import { Swtpm, type TpmKeys } from '../lib/swtpm.js';

describe('MakeCredential against swtpm + tpm2-tools', () => {
  let lab: NetLab;
  let tpmA: Swtpm;
  let tpmB: Swtpm;
  let dir: string;
  let counter = 0;

  beforeAll(async () => {
    lab = await NetLab.create('tpm');
    const host = await lab.addHost('tpms');
    [tpmA, tpmB] = [await Swtpm.start(lab, host.ns, 2321), await Swtpm.start(lab, host.ns, 2331)];
    dir = mkdtempSync(path.join(tmpdir(), 'bootfarm-tpm-cred-'));
  });

  afterAll(async () => {
    await tpmA?.stop();
    await tpmB?.stop();
    await lab?.destroy();
  });

  /** bootfarm's blob for `keys`' EK, bound to the Name bootfarm computes from `akPub`, as a tpm2-tools file. */
  const made = (ekPub: Buffer, akPub: Buffer, secret: Buffer): string => {
    const file = path.join(dir, `cred-${counter++}.bin`);
    writeFileSync(file, toolsCredentialFile(makeCredential(parsePublic(ekPub), objectName(parsePublic(akPub)), secret)));
    return file;
  };

  for (const alg of ['rsa', 'ecc'] as const) {
    it(`${alg.toUpperCase()} EK: the TPM holding the EK recovers exactly the secret; another TPM and another key do not`, async () => {
      const a: TpmKeys = await tpmA.createKeys(alg, `a-${alg}`);
      const b: TpmKeys = await tpmB.createKeys(alg, `b-${alg}`);
      expect(objectName(parsePublic(a.akPub)).equals(a.akName)).toBe(true);
      const secret = randomBytes(32);
      const file = made(a.ekPub, a.akPub, secret);

      const ok = await tpmA.activate(a, file);
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.secret?.equals(secret)).toBe(true);

      // The same blob on a second TPM: its EK cannot unseal the seed.
      const other = await tpmB.activate(b, file);
      expect(other.code).not.toBe(0);
      expect(other.stderr).toMatch(/Esys_ActivateCredential\(0x[0-9A-F]+\) - tpm:/); // the TPM refused, not a tool's setup step
      expect(other.secret).toBeUndefined();

      // Bound to A's AK: activating it with another key on the same TPM fails the integrity check.
      const a2 = await tpmA.createKeys(alg, `a2-${alg}`);
      const wrongKey = await tpmA.activate({ ...a, akCtx: a2.akCtx }, file);
      expect(wrongKey.code).not.toBe(0);
      expect(wrongKey.stderr).toMatch(/tpm:parameter\(1\):integrity check failed/);
    });
  }

  it('has the structure tpm2_makecredential -T none writes, and both activate to the same secret', async () => {
    const a = await tpmA.createKeys('rsa', 'a-tools');
    const secret = randomBytes(32);
    const secretFile = path.join(dir, 'secret.bin');
    writeFileSync(secretFile, secret);
    const theirs = path.join(dir, 'tools-cred.bin');
    const ekFile = path.join(dir, 'tools-ek.pub');
    writeFileSync(ekFile, a.ekPub);
    await tpmA.toolOk('tpm2_makecredential', ['-T', 'none', '-u', ekFile, '-s', secretFile, '-n', a.akName.toString('hex'), '-o', theirs]);
    const ours = made(a.ekPub, a.akPub, secret);
    const [t, o] = [readFileSync(theirs), readFileSync(ours)];
    // Both random (OAEP padding and seed), so equal only in layout: header, TPM2B sizes, total length.
    expect(o.length).toBe(t.length);
    expect(o.subarray(0, 8).equals(t.subarray(0, 8))).toBe(true);
    expect(o.readUInt16BE(8)).toBe(t.readUInt16BE(8));
    expect(o.readUInt16BE(10)).toBe(t.readUInt16BE(10));
    expect(o.readUInt16BE(8 + 2 + o.readUInt16BE(8))).toBe(t.readUInt16BE(8 + 2 + t.readUInt16BE(8)));
    expect(o.equals(t)).toBe(false);
    for (const file of [theirs, ours]) {
      const r = await tpmA.activate(a, file);
      expect(r.code, r.stderr).toBe(0);
      expect(r.secret?.equals(secret)).toBe(true);
    }
  });
});
