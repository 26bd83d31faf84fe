// qemu-user through binfmt_misc runs the target-arch RUN steps of a cross build.
// The "F" flag makes the kernel open the interpreter at registration, so it
// works inside build containers that do not have qemu themselves.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { SetupError } from '../errors.js';
import { ARCH_INFO, hostArch, type ImageArch } from './arch.js';

export interface BinfmtPaths {
  /** The binfmt_misc mount (/proc/sys/fs/binfmt_misc). */
  miscDir: string;
  /** Where qemu-user-static leaves its registrations (/usr/lib/binfmt.d). */
  confDir: string;
}

const SYSTEM_BINFMT: BinfmtPaths = { miscDir: '/proc/sys/fs/binfmt_misc', confDir: '/usr/lib/binfmt.d' };

const FIX = 'install it with "apt-get install qemu-user-static" (scripts/install-system-deps.sh image)';

/**
 * Makes sure every non-native arch can run: mounts binfmt_misc when it is not,
 * registers qemu-<arch> from qemu-user-static's binfmt.d line when missing.
 * Returns one line per action taken (the caller shows them).
 */
export function ensureBinfmt(arches: ImageArch[], paths: BinfmtPaths = SYSTEM_BINFMT, native: ImageArch = hostArch()): string[] {
  const said: string[] = [];
  const foreign = arches.filter((a) => a !== native);
  if (foreign.length === 0) return said;
  if (!existsSync(path.join(paths.miscDir, 'register'))) {
    try {
      execFileSync('mount', ['-t', 'binfmt_misc', 'binfmt_misc', paths.miscDir], { stdio: 'pipe' });
    } catch (err) {
      throw new SetupError(
        `binfmt_misc is not mounted at ${paths.miscDir} and mounting it failed (${(err as Error).message.trim()}); run as root: mount -t binfmt_misc binfmt_misc ${paths.miscDir}`,
      );
    }
    said.push(`binfmt: mounted binfmt_misc on ${paths.miscDir} (it was not mounted)`);
  }
  for (const arch of foreign) {
    const name = `qemu-${ARCH_INFO[arch].qemu}`;
    const entry = path.join(paths.miscDir, name);
    if (existsSync(entry)) {
      const state = readFileSync(entry, 'utf8');
      if (!/^enabled/m.test(state)) throw new SetupError(`binfmt: ${name} is registered but disabled; enable it with: echo 1 > ${entry}`);
      if (!/^flags:.*F/m.test(state))
        throw new SetupError(
          `binfmt: ${name} is registered without the F flag, so build containers cannot use it; re-register it: echo -1 > ${entry}, then run the build again`,
        );
      continue;
    }
    const conf = path.join(paths.confDir, `${name}.conf`);
    if (!existsSync(conf))
      throw new SetupError(`building for ${arch} on this ${native} host needs qemu-user binfmt (${name}), and ${conf} is missing: ${FIX}`);
    const line = readFileSync(conf, 'utf8')
      .split('\n')
      .find((l) => l.startsWith(':'));
    if (!line) throw new SetupError(`binfmt: ${conf} holds no registration line; ${FIX}`);
    const interpreter = line.split(':')[6] ?? '';
    if (interpreter && !existsSync(interpreter))
      throw new SetupError(`binfmt: the interpreter ${interpreter} named by ${conf} is missing; ${FIX}`);
    try {
      writeFileSync(path.join(paths.miscDir, 'register'), line);
    } catch (err) {
      throw new SetupError(`binfmt: registering ${name} failed (${(err as Error).message}); run as root`);
    }
    said.push(`binfmt: registered ${name} for ${arch} builds (it was missing)`);
  }
  return said;
}
