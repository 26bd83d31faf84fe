// What the lab programs into a `pi4-http` node's scripted EEPROM, taken the way an
// operator takes it: from `bootfarm pi eeprom-config NODE` (server/cli/pi.ts), its
// HTTP_HOST, HTTP_PORT and HTTP_PATH lines and the public key it prints. Run
// before bootfarm starts, so the key it generates into the state directory is the
// one the server then signs with (server/pi/signing-key.ts keeps an existing key).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { SetupError } from '../errors.js';
import { run } from './proc.js';

export interface PiEepromHttp {
  host: string;
  port: number;
  path: string;
  /** The printed public key, saved as a PEM file for the scripted bootloader's --pubkey. */
  pubkeyFile: string;
}

/** The HTTP settings in `pi eeprom-config`'s output, or why they are not there. */
function parseEepromHttp(text: string): Omit<PiEepromHttp, 'pubkeyFile'> & { pem: string } {
  const value = (key: string) => new RegExp(`^${key}=(\\S+)$`, 'm').exec(text)?.[1];
  const host = value('HTTP_HOST');
  const port = Number(value('HTTP_PORT') ?? '80');
  const httpPath = value('HTTP_PATH');
  const pem = /^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=\n]+-----END PUBLIC KEY-----$/m.exec(text)?.[0];
  if (!host || !httpPath || !pem || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new SetupError(`bootfarm pi eeprom-config printed no HTTP_HOST, HTTP_PORT, HTTP_PATH and public key:\n${text}`);
  return { host, port, path: httpPath, pem: `${pem}\n` };
}

/** `bootfarm pi eeprom-config HOSTNAME --config FILE` through the lab's CLI; the key saved under workDir. */
export async function piEepromHttp(
  cli: { execPath: string; args: string[] },
  configFile: string,
  hostname: string,
  workDir: string,
): Promise<PiEepromHttp> {
  const r = await run(cli.execPath, [...cli.args, 'pi', 'eeprom-config', hostname, '--config', configFile], 120_000);
  if (r.code !== 0) throw new SetupError(`bootfarm pi eeprom-config ${hostname} failed (${r.code}): ${r.stderr || r.stdout}`);
  const { pem, ...settings } = parseEepromHttp(r.stdout);
  const pubkeyFile = path.join(workDir, `${hostname}-eeprom.pub.pem`);
  writeFileSync(pubkeyFile, pem);
  return { ...settings, pubkeyFile };
}
