// `bootfarm image gc`: removes published image versions no machine can still
// read. A version is kept while it is `current`, while a connection reads it,
// and while it is some machine's last root attachment (server/store/store.ts
// RootAttachment): a running node may reconnect to its version at any moment,
// after a server restart too (docs/design.md "Root reconnect"), so a version
// stays until every machine that attached it has attached another. `keepNewest`
// more versions are kept for a rollback. The plan is pure; removal renames a
// version out of the catalog's sight first, then deletes it.
import { lstat, readdir, readlink, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { SetupError } from '../errors.js';
import type { RootAttachment } from '../store/store.js';
import { IMAGE_DIR_NAME as VERSION } from './names.js';

/** What the running server reports (control command `root-holders`). */
export interface RootHolders {
  attachments: RootAttachment[];
  open: Array<{ image: string; version: string; export: string }>;
  /** With an external NBD backend bootfarm sees no attachments: gc cannot know what is held. */
  backend: string;
}

export interface PublishedVersion {
  image: string;
  version: string;
  /** Newest modification time in the version directory (its publish time). */
  mtimeMs: number;
  /** Bytes of its files (hard-linked files counted once). */
  bytes: number;
}

export interface GcDecision extends PublishedVersion {
  keep: boolean;
  /** Why it is kept: current, held by a machine, open now, among the newest; empty when it goes. */
  reasons: string[];
}

/** Every published version under `imagesDir` (of one image, if named) and where each image's `current` points. */
export async function listPublished(
  imagesDir: string,
  onlyImage?: string,
): Promise<{ versions: PublishedVersion[]; current: Map<string, string> }> {
  const versions: PublishedVersion[] = [];
  const current = new Map<string, string>();
  const entries = await readdir(imagesDir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
    throw err.code === 'ENOENT' || err.code === 'ENOTDIR' ? new SetupError(`${imagesDir}: no such images directory`) : err;
  });
  const images = entries.filter((d) => d.isDirectory() && VERSION.test(d.name) && (onlyImage === undefined || d.name === onlyImage));
  if (onlyImage !== undefined && images.length === 0)
    throw new SetupError(`--image ${onlyImage}: no such published image under ${imagesDir}`);
  for (const image of images) {
    const imageDir = path.join(imagesDir, image.name);
    const target = await readlink(path.join(imageDir, 'current')).catch(() => undefined);
    if (target !== undefined) current.set(image.name, path.basename(target));
    for (const entry of await readdir(imageDir, { withFileTypes: true })) {
      // `current` is a link; `.<version>.tmp-*` a publish in progress.
      if (!entry.isDirectory() || !VERSION.test(entry.name)) continue;
      versions.push({ image: image.name, version: entry.name, ...(await sizeOf(path.join(imageDir, entry.name))) });
    }
  }
  return { versions, current };
}

async function sizeOf(dir: string): Promise<{ bytes: number; mtimeMs: number }> {
  const seen = new Set<string>();
  let bytes = 0;
  let mtimeMs = 0;
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      const st = await lstat(p);
      mtimeMs = Math.max(mtimeMs, st.mtimeMs);
      if (entry.isDirectory()) await walk(p);
      else if (entry.isFile() && !seen.has(`${st.dev}:${st.ino}`)) {
        seen.add(`${st.dev}:${st.ino}`);
        bytes += st.size;
      }
    }
  };
  await walk(dir);
  return { bytes, mtimeMs };
}

/** Which versions stay and why; the rest may go. */
export function planGc(
  published: PublishedVersion[],
  current: Map<string, string>,
  holders: RootHolders,
  keepNewest: number,
): GcDecision[] {
  const heldBy = new Map<string, string[]>();
  const hold = (image: string, version: string, who: string) => {
    const key = `${image}/${version}`;
    heldBy.set(key, [...(heldBy.get(key) ?? []), who]);
  };
  for (const a of holders.attachments)
    hold(a.image, a.version, `held by ${a.hostname ?? a.mac ?? a.address} (attached ${new Date(a.at).toISOString()})`);
  for (const o of holders.open) hold(o.image, o.version, `open now (${o.export})`);
  const newest = new Map<string, Set<string>>();
  for (const image of new Set(published.map((v) => v.image))) {
    const others = published.filter((v) => v.image === image && v.version !== current.get(image)).sort((a, b) => b.mtimeMs - a.mtimeMs);
    newest.set(image, new Set(others.slice(0, keepNewest).map((v) => v.version)));
  }
  return published.map((v) => {
    const reasons = [
      ...(current.get(v.image) === v.version ? ['current'] : []),
      ...[...new Set(heldBy.get(`${v.image}/${v.version}`) ?? [])],
      ...(newest.get(v.image)?.has(v.version) ? [`among the ${keepNewest} newest kept (--keep)`] : []),
    ];
    return { ...v, keep: reasons.length > 0, reasons };
  });
}

/** Removes the versions the plan lets go: each renamed out of the catalog's sight, then deleted. */
export async function removeVersions(imagesDir: string, decisions: GcDecision[]): Promise<void> {
  for (const d of decisions.filter((x) => !x.keep)) {
    const dir = path.join(imagesDir, d.image, d.version);
    const doomed = path.join(imagesDir, d.image, `.${d.version}.gc-${process.pid}`);
    await rename(dir, doomed);
    await rm(doomed, { recursive: true, force: true });
  }
}
