// Which TPM endorsement key (EK) belongs to which node, for kubernetes.admission:
// tpm. A node's EK is registered in its `tpm.ek`: in the configuration file a
// path (relative to that file) or the TPM2B_PUBLIC in base64; through the API
// (`bootfarm node add|enrol --ek FILE`) only base64, so an API client cannot make
// bootfarm read files. With kubernetes.tpm.trustOnFirstUse, a node without one
// has the EK of its first successful attestation kept in the state directory
// (tpm-eks.json, 0600) and bound to it from then on.
import { existsSync, readFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import path from 'node:path';
import type { EffectiveNode } from '../inventory/effective.js';
import { TpmFormatError } from '../tpm/marshal.js';
import { parsePublic, type TpmPublic } from '../tpm/public-area.js';
import { PRIVATE_FILE_MODE } from '../store/private-files.js';

export type EkSource = 'config' | 'api' | 'trust-on-first-use';

export interface RegisteredEk {
  ek: TpmPublic;
  source: EkSource;
}

/** A registered EK that cannot be used (unreadable file, not a TPM2B_PUBLIC): the node cannot attest until it is fixed. */
export class EkRegistrationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EkRegistrationError';
  }
}

const FILE = 'tpm-eks.json';
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

interface TrustFile {
  version: 1;
  /** MAC -> TPM2B_PUBLIC in base64. */
  eks: Record<string, string>;
}

export class EkRegistry {
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly file: string,
    private readonly configDir: string,
    private readonly trusted: Map<string, string>,
  ) {}

  /** Reads the trust-on-first-use registrations kept in `stateDir`. */
  static open(stateDir: string, configFile: string): EkRegistry {
    const file = path.join(stateDir, FILE);
    const trusted = new Map<string, string>();
    if (existsSync(file)) {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as TrustFile;
      if (parsed.version !== 1 || typeof parsed.eks !== 'object' || parsed.eks === null)
        throw new Error(`${file}: not a bootfarm TPM registration file (version 1)`);
      for (const [mac, ek] of Object.entries(parsed.eks)) if (typeof ek === 'string') trusted.set(mac, ek);
    }
    return new EkRegistry(file, path.dirname(path.resolve(configFile)), trusted);
  }

  /** The node's registered EK, or undefined when it has none. */
  registered(node: Pick<EffectiveNode, 'mac' | 'origin' | 'tpm'>): RegisteredEk | undefined {
    const value = node.tpm?.ek;
    if (value !== undefined) {
      const source: EkSource = node.origin === 'config' ? 'config' : 'api';
      return { ek: this.parse(this.bytesOf(value, source), `the ${source === 'config' ? 'configured' : 'registered'} tpm.ek`), source };
    }
    const trusted = this.trusted.get(node.mac);
    return trusted === undefined
      ? undefined
      : { ek: this.parse(Buffer.from(trusted, 'base64'), `the EK kept in ${FILE}`), source: 'trust-on-first-use' };
  }

  private bytesOf(value: string, source: EkSource): Buffer {
    if (source === 'config') {
      const file = path.resolve(this.configDir, value);
      if (existsSync(file)) {
        try {
          return readFileSync(file);
        } catch (err) {
          throw new EkRegistrationError(`tpm.ek ${value}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
      }
    }
    if (!BASE64.test(value))
      throw new EkRegistrationError(
        source === 'config' ? `tpm.ek ${JSON.stringify(value)} is neither an existing file nor base64` : 'tpm.ek is not base64',
      );
    return Buffer.from(value, 'base64');
  }

  private parse(bytes: Buffer, what: string): TpmPublic {
    try {
      return parsePublic(bytes);
    } catch (err) {
      if (err instanceof TpmFormatError) throw new EkRegistrationError(`${what} is not a TPM2B_PUBLIC: ${err.message}`);
      throw err;
    }
  }

  /** Registers `ek` for `mac` (trust on first use), durably before it resolves. */
  trust(mac: string, ek: Buffer): Promise<void> {
    const previous = this.trusted.get(mac);
    const value = ek.toString('base64');
    this.trusted.set(mac, value);
    const body: TrustFile = { version: 1, eks: Object.fromEntries(this.trusted) };
    const write = this.writing.then(() => writeDurably(this.file, `${JSON.stringify(body, null, 2)}\n`));
    this.writing = write.catch(() => undefined);
    return write.catch((err: unknown) => {
      // Not kept on disk, so not kept at all: pinned in memory only, the EK would
      // bind the node until a restart silently forgot it. Undone unless a later
      // trust() of this MAC replaced it meanwhile.
      if (this.trusted.get(mac) === value) {
        if (previous === undefined) this.trusted.delete(mac);
        else this.trusted.set(mac, previous);
      }
      throw err;
    });
  }
}

/** Temporary file, fsync, rename: a crash leaves the old file or the new one. */
async function writeDurably(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp`;
  const handle = await open(tmp, 'w', PRIVATE_FILE_MODE);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
}
