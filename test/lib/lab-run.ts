// One way for the lab test files (test/integration/lab*.test.ts) to run the
// emulation lab: the built CLI's `bootfarm lab run --json` against the lab image
// cache, and the image build that every file's beforeAll makes (a cache hit when
// nothing under imagebuild/ changed).
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { run } from '../../server/lab/proc.js';
import { REPO_ROOT } from './bootfarm.js';
import type { NodeResult } from '../../server/lab/lab.js';

export const CLI = path.join(REPO_ROOT, 'dist/server/cli/main.js');
// Kept between runs on a developer machine (an unchanged rebuild is a cache hit); CI starts empty.
export const IMAGES = process.env.BOOTFARM_LAB_IMAGES ?? '/var/tmp/bootfarm-lab-images';

export interface LabJson {
  results: NodeResult[];
  cluster: Array<{ name: string; tokenId: string; labels: Record<string, string> }>;
}

/** `bootfarm lab run` with these arguments; its JSON summary, exit code and stderr. */
export async function lab(args: string[]): Promise<{ code: number | null; json: LabJson; stderr: string }> {
  const r = await run(
    process.execPath,
    [CLI, 'lab', 'run', '--json', '--images-dir', IMAGES, '--image', 'lab', '--timeout', '900', ...args],
    40 * 60_000,
  );
  if (!r.stdout.trim().startsWith('{')) throw new Error(`lab run printed no JSON (exit ${r.code}):\n${r.stderr.slice(-4000)}`);
  return { code: r.code, json: JSON.parse(r.stdout) as LabJson, stderr: r.stderr };
}

/** The lab image for both architectures, built or found in the cache. */
export function buildLabImage(): void {
  execFileSync(process.execPath, [CLI, 'image', 'build', '--name', 'lab', '--arch', 'amd64,arm64', '--images-dir', IMAGES, '--plain'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    timeout: 60 * 60_000,
  });
}

/** The TFTP or HTTP paths a node fetched, in order. */
export function fetchedPaths(node: NodeResult, type: 'tftp.file' | 'http.file'): string[] {
  return node.events.filter((e) => e.type === type).map((e) => String(e.detail?.path));
}
