// The state directory holds per-boot secrets (phone-home secrets, token ids):
// it is 0700 and every state file 0600, whatever the umask or an older release left.
import { chmodSync, mkdirSync, statSync } from 'node:fs';

const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Creates `dir` 0700, or tightens an existing one that others can read or enter.
 * Returns what it changed, for the log (never throws for a chmod it may not do: it says so).
 */
export function ensurePrivateDir(dir: string): string[] {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  return tighten(dir, PRIVATE_DIR_MODE);
}

/** Tightens an existing file to 0600 (a file written by a release that created them 0644). */
export function ensurePrivateFile(file: string): string[] {
  return tighten(file, PRIVATE_FILE_MODE);
}

function tighten(file: string, wanted: number): string[] {
  const st = statSync(file, { throwIfNoEntry: false });
  if (!st || (st.mode & 0o777 & ~wanted) === 0) return [];
  const was = (st.mode & 0o777).toString(8).padStart(4, '0');
  try {
    chmodSync(file, wanted);
    return [`${file} was mode ${was}; tightened to ${wanted.toString(8).padStart(4, '0')} (state files hold per-boot secrets)`];
  } catch (err) {
    return [`${file} is mode ${was} and could not be tightened to ${wanted.toString(8).padStart(4, '0')}: ${(err as Error).message}`];
  }
}
