// The lab's "new version published while a node is attached" (--publish-during-outage):
// a second version of the lab image that differs from the one the node mounted in
// its root (a marker file and 1 MiB of random bytes appended with mksquashfs, so
// its size differs too) and
// shares everything else by hard links, published as the image builder does (the
// version directory appears whole, then `current` is switched by a rename). Undone
// when the lab ends: the lab's images directory is a cache other runs reuse.
import {
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  copyFileSync,
  statSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { run } from './proc.js';
import { guestRun } from './guest-shell.js';
import type { PublishReport } from './lab-results.js';

const NEXT_MARKER = '/etc/bootfarm-lab-next-version';

export interface PublishedNext {
  image: string;
  /** The version the node mounted (current before). */
  from: string;
  /** The version published while it was attached. */
  to: string;
}

/** Hard-links `from` into `to`, file by file (directories made). */
function linkTree(from: string, to: string, skip: (rel: string) => boolean, rel = ''): void {
  mkdirSync(path.join(to, rel), { recursive: true });
  for (const entry of readdirSync(path.join(from, rel), { withFileTypes: true })) {
    const r = path.join(rel, entry.name);
    if (skip(r)) continue;
    if (entry.isDirectory()) linkTree(from, to, skip, r);
    else linkSync(path.join(from, r), path.join(to, r));
  }
}

export async function publishNextVersion(imagesDir: string, image: string): Promise<PublishedNext> {
  const imageDir = path.join(imagesDir, image);
  const from = path.basename(readlinkSync(path.join(imageDir, 'current')));
  const to = `${from}-lab-next`;
  const staging = path.join(imageDir, `.${to}.tmp-${process.pid}`);
  rmSync(staging, { recursive: true, force: true });
  const arches = readdirSync(path.join(imageDir, from), { withFileTypes: true })
    .filter((d) => d.isDirectory() && d.name !== 'oci')
    .map((d) => d.name);
  const extra = mkdtempSync(path.join(imageDir, '.lab-next-files-'));
  try {
    mkdirSync(path.join(extra, path.dirname(NEXT_MARKER).slice(1)), { recursive: true });
    writeFileSync(path.join(extra, NEXT_MARKER.slice(1)), `${to}\n`);
    // Incompressible, so the new image is larger by more than squashfs's 4 KiB padding.
    writeFileSync(path.join(extra, `${NEXT_MARKER.slice(1)}.bin`), randomBytes(1024 * 1024));
    for (const arch of arches) {
      linkTree(path.join(imageDir, from, arch), path.join(staging, arch), (rel) => rel === 'root.squashfs');
      const root = path.join(staging, arch, 'root.squashfs');
      copyFileSync(path.join(imageDir, from, arch, 'root.squashfs'), root);
      // Appends to the copy (mksquashfs's default for an existing file): new bytes without recompressing the old.
      const r = await run('mksquashfs', [extra, root, '-no-progress', '-quiet', '-all-root'], 600_000);
      if (r.code !== 0) throw new Error(`mksquashfs (append to ${root}): ${r.stderr || r.stdout}`);
      if (statSync(root).size === statSync(path.join(imageDir, from, arch, 'root.squashfs')).size)
        throw new Error(`${root}: appending did not change the image`);
    }
    renameSync(staging, path.join(imageDir, to));
    const tmpLink = path.join(imageDir, `.current.tmp-${process.pid}`);
    rmSync(tmpLink, { force: true });
    symlinkSync(to, tmpLink);
    renameSync(tmpLink, path.join(imageDir, 'current'));
  } finally {
    rmSync(extra, { recursive: true, force: true });
    rmSync(staging, { recursive: true, force: true });
  }
  return { image, from, to };
}

/** Points `current` back at the version the lab found and removes the one it published. */
export function unpublishNextVersion(imagesDir: string, published: PublishedNext): void {
  const imageDir = path.join(imagesDir, published.image);
  const tmpLink = path.join(imageDir, `.current.tmp-${process.pid}`);
  rmSync(tmpLink, { force: true });
  symlinkSync(published.from, tmpLink);
  renameSync(tmpLink, path.join(imageDir, 'current'));
  if (existsSync(path.join(imageDir, published.to))) rmSync(path.join(imageDir, published.to), { recursive: true, force: true });
}

/**
 * After a publish under a node: does its root show the new version (it must
 * not), and what does `bootfarm image gc --dry-run` keep?
 */
export async function checkAfterPublish(o: {
  controlSocket: string;
  cli: { execPath: string; args: string[] };
  imagesDir: string;
  stateDir: string;
  published: PublishedNext;
  log: (line: string) => void;
}): Promise<PublishReport> {
  const seen = await guestRun(o.controlSocket, `[ -e ${NEXT_MARKER} ] && echo MARKER present || echo MARKER absent`, 120_000);
  const gcArgs = [
    'image',
    'gc',
    '--images-dir',
    o.imagesDir,
    '--state-dir',
    o.stateDir,
    '--image',
    o.published.image,
    '--keep',
    '0',
    '--dry-run',
    '--json',
  ];
  const gc = await run(o.cli.execPath, [...o.cli.args, ...gcArgs], 120_000);
  if (gc.code !== 0) throw new Error(`bootfarm image gc --dry-run: ${gc.stderr}`);
  const decisions = (JSON.parse(gc.stdout) as { decisions: Array<{ version: string; keep: boolean; reasons: string[] }> }).decisions;
  o.log(`gc (dry run): ${decisions.map((d) => `${d.version} ${d.keep ? `kept (${d.reasons.join('; ')})` : 'would go'}`).join(', ')}`);
  return {
    from: o.published.from,
    to: o.published.to,
    markerOnNode: !/^MARKER absent$/m.test(seen.output),
    gc: decisions.map(({ version, keep, reasons }) => ({ version, keep, reasons })),
  };
}
