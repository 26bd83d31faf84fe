// One way for the lab test files (test/integration/lab*.test.ts) to run the
// emulation lab: the built CLI's `bootfarm lab run --json` against the lab image
// cache, and the image build that every file's beforeAll makes (a cache hit when
// nothing under imagebuild/ changed).
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { run } from '../../server/lab/proc.js';
import { REPO_ROOT } from './bootfarm.js';
import type { NodeResult } from '../../server/lab/lab.js';
import { VolumeWatch } from './docker-volumes.js';

export const CLI = path.join(REPO_ROOT, 'dist/server/cli/main.js');
// Kept between runs on a developer machine (an unchanged rebuild is a cache hit); CI starts empty.
export const IMAGES = process.env.BOOTFARM_LAB_IMAGES ?? '/var/tmp/bootfarm-lab-images';

export interface LabJson {
  results: NodeResult[];
  cluster: Array<{ name: string; tokenId: string; labels: Record<string, string> }>;
}

/** `bootfarm lab run` with these arguments; its JSON summary, exit code and stderr. */
export async function lab(args: string[]): Promise<{ code: number | null; json: LabJson; stderr: string }> {
  const volumes = VolumeWatch.start();
  const r = await run(
    process.execPath,
    [CLI, 'lab', 'run', '--json', '--images-dir', IMAGES, '--image', 'lab', '--timeout', '900', ...args],
    40 * 60_000,
  );
  await noVolumesLeft(volumes, r.stderr);
  if (!r.stdout.trim().startsWith('{')) throw new Error(`lab run printed no JSON (exit ${r.code}):\n${r.stderr.slice(-4000)}`);
  return { code: r.code, json: JSON.parse(r.stdout) as LabJson, stderr: r.stderr };
}

/**
 * Throws when the run's own containers (`--server docker`: <lab id>-bootfarm and its
 * -net holder) left a volume behind: the server image's VOLUME gives each an
 * anonymous one, which only a removal with its volumes takes away. Whatever the run's
 * exit, a lab tears its containers down.
 */
async function noVolumesLeft(volumes: VolumeWatch, stderr: string): Promise<void> {
  // The lab's names all start with its id; its switch namespace is <id>-sw.
  const id = stderr.match(/^lab: lab network (\S+)-sw /m)?.[1];
  const left = await volumes.left((name) => id !== undefined && name.startsWith(`${id}-`));
  if (left.length) throw new Error(`lab run ${id ?? ''} left docker volume(s) of its containers:\n${left.join('\n')}`);
}

/** The work directory a lab run made for itself, as its stderr named it at start. */
export function labWorkDir(stderr: string): string {
  const dir = stderr.match(/^lab: lab network .*; work dir (\S+)$/m)?.[1];
  if (!dir) throw new Error(`the lab run named no work dir:\n${stderr.slice(0, 2000)}`);
  return dir;
}

/** A lab run in progress: its stderr lines as they come, and its end. */
export interface LiveLab {
  /** Resolves with the first stderr line that matches (rejects when the run ends first or after timeoutMs). */
  waitForLine(test: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  done: Promise<{ code: number | null; json: LabJson; stderr: string }>;
}

/** `bootfarm lab run --json` in the background, for a test that watches the lab while it runs. */
export function startLab(args: string[]): LiveLab {
  const volumes = VolumeWatch.start();
  const child = spawn(
    process.execPath,
    [CLI, 'lab', 'run', '--json', '--images-dir', IMAGES, '--image', 'lab', '--timeout', '900', ...args],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const killer = setTimeout(() => child.kill('SIGKILL'), 40 * 60_000);
  let stdout = '';
  let stderr = '';
  let partial = '';
  const waiters = new Set<{ test: RegExp; resolve: (m: RegExpMatchArray) => void }>();
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines)
      for (const w of [...waiters]) {
        const m = line.match(w.test);
        if (m) {
          waiters.delete(w);
          w.resolve(m);
        }
      }
  });
  const done = new Promise<{ code: number | null; json: LabJson; stderr: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(killer);
      noVolumesLeft(volumes, stderr).then(() => {
        if (!stdout.trim().startsWith('{')) reject(new Error(`lab run printed no JSON (exit ${code}):\n${stderr.slice(-4000)}`));
        else resolve({ code, json: JSON.parse(stdout) as LabJson, stderr });
      }, reject);
    });
  });
  const ended = done.then(
    () => undefined,
    () => undefined,
  );
  return {
    done,
    waitForLine: (test, timeoutMs) =>
      new Promise((resolve, reject) => {
        const already = stderr
          .split('\n')
          .map((l) => l.match(test))
          .find((m) => m !== null);
        if (already) return resolve(already);
        const fail = (why: string) => {
          if (waiters.delete(w)) reject(new Error(`lab run: no line matching ${String(test)} (${why}):\n${stderr.slice(-3000)}`));
        };
        const timer = setTimeout(() => fail(`${timeoutMs} ms`), timeoutMs);
        const w = {
          test,
          resolve: (m: RegExpMatchArray) => {
            clearTimeout(timer);
            resolve(m);
          },
        };
        waiters.add(w);
        void ended.then(() => fail('the run ended'));
      }),
  };
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
