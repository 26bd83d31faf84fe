// `bootfarm lab down`: what an interrupted lab left behind, removed.
import { run } from './proc.js';

/**
 * `bootfarm lab down`: removes what an interrupted lab left behind. Lab network
 * namespaces are named `bflab<tag><hex>-*` and hold only processes a lab started
 * (bootfarm, QEMU, the Pi stand-in, the fake API): those are ended by PID, the
 * lab's server containers removed, then the namespaces deleted.
 */
export async function labDown(log: (line: string) => void): Promise<number> {
  const names = (await run('ip', ['netns', 'list'])).stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => /^bflab[0-9a-z]+-/.test(n));
  for (const ns of names) {
    const pids = (await run('ip', ['netns', 'pids', ns])).stdout
      .split('\n')
      .map(Number)
      .filter((p) => p > 1);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
    }
    if (pids.length) log(`${ns}: ended ${pids.length} process(es) (${pids.join(', ')})`);
  }
  const labIds = [...new Set(names.map((n) => n.split('-')[0] as string))];
  const containers = (await run('docker', ['ps', '-a', '--format', '{{.Names}}'])).stdout
    .split('\n')
    .filter((c) => labIds.some((id) => c.startsWith(`${id}-bootfarm`)));
  for (const c of containers) {
    // -v: the server image's VOLUME gave the container an anonymous volume, which plain rm leaves dangling.
    await run('docker', ['rm', '-f', '-v', c]);
    log(`removed container ${c}`);
  }
  await new Promise((r) => setTimeout(r, 1000));
  for (const ns of names) {
    for (const pid of (await run('ip', ['netns', 'pids', ns])).stdout
      .split('\n')
      .map(Number)
      .filter((p) => p > 1)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    await run('ip', ['netns', 'del', ns]);
  }
  if (names.length) log(`deleted namespaces ${names.join(', ')}`);
  return names.length;
}
