// The ordered chain of file resolvers shared by TFTP and HTTP: per-node generated
// files, then per-node image files, then static files under the TFTP root. Each
// resolver either answers or passes (undefined) to the next.
import type { Metrics } from '../../metrics.js';
import type { FileRefusal } from './image-access.js';

/** Bytes of one file being served: cached, streamed from disk, or rendered. */
export interface FileSource {
  size: number;
  read(offset: number, length: number): Buffer | Promise<Buffer>;
  /** Called once when the transfer ends (e.g. to release a cache reference). */
  release(): void;
}

export interface FileRequest {
  /** Normalised relative path (no leading slash, no '.' or '..'). */
  path: string;
  clientAddress: string;
  protocol: 'tftp' | 'http';
}

export type FileAnswer =
  | { found: true; from: string; size: number; open(): Promise<FileSource>; realPath?: string }
  | { found: false; denied: boolean; detail: string; refusal?: FileRefusal };

export interface FileResolver {
  readonly name: string;
  resolve(request: FileRequest): Promise<FileAnswer | undefined>;
}

export class ResolverChain {
  constructor(
    private readonly resolvers: FileResolver[],
    private readonly metrics?: Metrics,
  ) {}

  async resolve(request: FileRequest): Promise<FileAnswer> {
    for (const resolver of this.resolvers) {
      const answer = await resolver.resolve(request);
      if (!answer) continue;
      if (!answer.found && answer.refusal) this.metrics?.bootFilesRefused.inc({ protocol: request.protocol, reason: answer.refusal });
      return answer;
    }
    return { found: false, denied: false, detail: 'no such file' };
  }
}
