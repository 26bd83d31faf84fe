// Serves a Pi 4/5 node's HTTP boot files at pi/<serial>/boot.img and
// pi/<serial>/boot.sig: its EEPROM, with HTTP_HOST=<server>, HTTP_PORT=<http.port>
// and HTTP_PATH=pi/<serial> (`bootfarm pi eeprom-config`), fetches boot.sig and
// then boot.img (boot-http.adoc). Both carry the boot's nonce (boot.img in
// cmdline.txt, boot.sig in the digest), so both go only where the node's
// cmdline.txt would go over TFTP: the same BootScriptIssuer decides, before any
// image is built. Images are built off the request path (child processes), one
// at a time, cached under their content key (server/pi/boot-files.ts) in
// <stateDir>/pi-http, and rebuilt when the key changes.
import { mkdir, rm, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import type { ResolvedConfig } from '../config/types.js';
import type { TemplateSet } from '../config/templates.js';
import { effectiveNode, type EffectiveNode } from '../inventory/effective.js';
import type { BootScriptIssuer } from '../boot/files/generated.js';
import { FileCache } from '../boot/files/file-cache.js';
import type { NodeDirectory } from '../boot/files/node-directory.js';
import type { FileAnswer, FileRequest, FileResolver, FileSource } from '../boot/files/resolver.js';
import { piBootFiles, PiBootFilesError } from './boot-files.js';
import { buildFatImage } from './boot-image.js';
import { filledDigest, offsetsOf, patchChunk, scanImage, slotFill, type SlottedImage } from './nonce-slots.js';
import { encodeBootSig } from './boot-sig.js';
import { loadOrCreateSigningKey, signSha256 } from './signing-key.js';

const PATH = /^pi\/([0-9a-f]{8})\/(boot\.img|boot\.sig)$/;
/** boot.sig texts kept per image and nonce: a boot asks for it once or twice, a few boots overlap. */
const SIG_MEMO = 256;

/** The HTTP_PATH of a node's boot files (without slashes, as the EEPROM takes it). */
export function piHttpPath(serial: string): string {
  return `pi/${serial}`;
}

export class PiHttpBootResolver implements FileResolver {
  readonly name = 'pi-http';
  private readonly dir: string;
  private readonly ready: Promise<void>;
  private readonly images = new Map<string, Promise<SlottedImage>>();
  /** The content key each node's image was last built under, by MAC: a superseded image is deleted. */
  private readonly nodeKeys = new Map<string, string>();
  private readonly sigs = new Map<string, Promise<Buffer>>();
  private buildQueue: Promise<unknown> = Promise.resolve();
  private signingKey: Promise<KeyObject> | undefined;

  /** `live` is read per request: a reload changes the next image built, not one being served. */
  constructor(
    private readonly live: { readonly config: ResolvedConfig; readonly templates: TemplateSet },
    private readonly nodes: NodeDirectory,
    private readonly cache: FileCache,
    private readonly bootScripts: BootScriptIssuer | undefined,
    private readonly logger: Logger,
  ) {
    this.dir = path.join(live.config.server.stateDir, 'pi-http');
    // Images of an earlier run are dropped: the placeholder scan and prefix hash live in memory only.
    this.ready = rm(this.dir, { recursive: true, force: true })
      .then(() => mkdir(this.dir, { recursive: true, mode: 0o700 }))
      .then(() => undefined);
  }

  /** Builds the images of every configured node with piBoot: http now, so their first boot does not wait for it. */
  async prebuild(): Promise<void> {
    const { config } = this.live;
    for (const node of config.nodes) {
      if (node.piBoot !== 'http') continue;
      await this.image(effectiveNode(node, config.layers, 'config')).catch((err: unknown) =>
        this.logger.error({ node: node.hostname, err: (err as Error).message }, 'Pi HTTP boot image not built'),
      );
    }
  }

  private key(): Promise<KeyObject> {
    this.signingKey ??= loadOrCreateSigningKey(this.live.config);
    return this.signingKey;
  }

  /** The node's image for the configuration in force now: cached by content key, else built (one build at a time). */
  private async image(node: EffectiveNode): Promise<SlottedImage> {
    await this.ready;
    const set = await piBootFiles(node, this.live.config, this.live.templates);
    let built = this.images.get(set.key);
    if (!built) {
      const file = path.join(this.dir, `${set.key}.img`);
      const slot = Buffer.from(set.nonceSlot, 'ascii');
      const cmdline = set.files.find((f) => f.name === 'cmdline.txt');
      const expected = cmdline && 'data' in cmdline ? offsetsOf(cmdline.data, slot).length : 0;
      const started = Date.now();
      const job = this.buildQueue.then(async () => {
        await buildFatImage(set.files, file, set.key.slice(0, 8));
        return scanImage(file, slot, expected);
      });
      this.buildQueue = job.catch(() => undefined);
      built = job.then((image) => {
        this.logger.info({ node: node.hostname, key: set.key, bytes: image.size, ms: Date.now() - started }, 'Pi HTTP boot image built');
        return image;
      });
      this.images.set(set.key, built);
      built.catch(() => this.images.delete(set.key));
    }
    const previous = this.nodeKeys.get(node.mac);
    this.nodeKeys.set(node.mac, set.key);
    if (previous !== undefined && previous !== set.key) this.forget(previous);
    return built;
  }

  /** Deletes a superseded image no node uses any more (an open transfer keeps its file handle or cached copy). */
  private forget(key: string): void {
    if ([...this.nodeKeys.values()].includes(key)) return;
    const image = this.images.get(key);
    this.images.delete(key);
    for (const memo of this.sigs.keys()) if (memo.startsWith(`${key}\0`)) this.sigs.delete(memo);
    void image?.then((i) => unlink(i.file)).catch(() => undefined);
  }

  private sig(key: string, image: SlottedImage, fill: Buffer): Promise<Buffer> {
    const memoKey = `${key}\0${fill.toString('hex')}`;
    let sig = this.sigs.get(memoKey);
    if (!sig) {
      sig = Promise.all([filledDigest(image, fill), this.key()]).then(([digest, signing]) =>
        encodeBootSig({ sha256: digest, ts: Math.floor(Date.now() / 1000), rsa2048: signSha256(signing, digest) }),
      );
      this.sigs.set(memoKey, sig);
      sig.catch(() => this.sigs.delete(memoKey));
      if (this.sigs.size > SIG_MEMO) this.sigs.delete(this.sigs.keys().next().value as string);
    }
    return sig;
  }

  async resolve(request: FileRequest): Promise<FileAnswer | undefined> {
    const match = PATH.exec(request.path);
    if (!match) return undefined;
    const [, serial, file] = match as unknown as [string, string, 'boot.img' | 'boot.sig'];
    if (request.protocol !== 'http') return { found: false, denied: false, detail: `${file} is served over HTTP only (Pi HTTP boot)` };
    const node = this.nodes.byPiSerial(serial);
    if (node?.piBoot !== 'http') return { found: false, denied: false, detail: `no node with piSerial ${serial} and piBoot: http` };
    let nonce: string | undefined;
    if (this.bootScripts) {
      // Authorised first: a stranger's request starts no build.
      const issued = await this.bootScripts.issue(node, request.clientAddress);
      if ('refused' in issued) return { found: false, denied: true, detail: issued.refused, refusal: 'boot-script-refused' };
      nonce = issued.nonce;
    }
    let image: SlottedImage;
    try {
      image = await this.image(node);
    } catch (err) {
      const detail = (err as Error).message;
      if (!(err instanceof PiBootFilesError)) this.logger.error({ node: node.hostname, err: detail }, 'Pi HTTP boot image build failed');
      return { found: false, denied: false, detail };
    }
    const fill = slotFill(image.slotLength, nonce);
    const from = `${this.name}:${node.hostname}`;
    if (file === 'boot.sig') {
      let data: Buffer;
      try {
        data = await this.sig(path.basename(image.file, '.img'), image, fill);
      } catch (err) {
        this.logger.error({ node: node.hostname, err: (err as Error).message }, 'boot.sig not signed');
        return { found: false, denied: false, detail: `boot.sig not signed: ${(err as Error).message}` };
      }
      return { found: true, from, size: data.length, open: async () => FileCache.fromBuffer(data) };
    }
    return {
      found: true,
      from,
      size: image.size,
      open: async (): Promise<FileSource> => {
        const source = await this.cache.open(image.file);
        return {
          size: image.size,
          read: async (offset, length) => patchChunk(image, await source.read(offset, length), offset, fill),
          release: () => source.release(),
        };
      },
    };
  }
}
