// One BuildKit build of imagebuild/Dockerfile for one architecture through
// dockerode, with live progress per stage and the failing step's output on
// failure. dockerode's followProgress resolves even when a build fails, so the
// stream is read here and every error event is checked.
import type Docker from 'dockerode';
import type { Readable } from 'node:stream';
import { decodeStatus } from './buildkit-status.js';

export interface StepProgress {
  /** "rootfs", "initrd"... from BuildKit's "[rootfs 3/7] RUN ..." vertex names. */
  stage: string;
  name: string;
  state: 'running' | 'done' | 'cached' | 'failed';
}

export interface BuildRequest {
  context: Readable;
  tag: string;
  target: string;
  buildargs: Record<string, string>;
  noCache?: boolean;
  onStep?: (step: StepProgress) => void;
  onLog?: (line: string) => void;
}

export interface BuildResult {
  imageId: string;
  /** Dockerfile steps (not internal vertices) that ran, and that came from the cache. */
  executed: string[];
  cached: string[];
}

export class BuildFailure extends Error {
  override readonly name = 'BuildFailure';
  constructor(
    readonly step: string,
    readonly output: string,
    readonly reason: string,
  ) {
    super(`step ${step || '(unknown)'}: ${reason}${output ? `\n--- output of that step ---\n${output}` : ''}`);
  }
}

const STEP = /^\[([^\s\]]+) \d+\/\d+\] /;
const WORK = /^\[[^\]]+\] (RUN|COPY|ADD) /;
const KEEP_LINES = 60;

interface VertexState {
  name: string;
  lines: string[];
  partial: string;
}

export async function buildImage(docker: Docker, req: BuildRequest): Promise<BuildResult> {
  const stream = (await docker.buildImage(req.context, {
    t: req.tag,
    target: req.target,
    buildargs: req.buildargs,
    version: '2',
    // RUN steps use the host's network: lab daemons run without a bridge.
    networkmode: 'host',
    nocache: req.noCache === true,
    rm: true,
    forcerm: true,
  } as Docker.ImageBuildOptions)) as unknown as Readable;

  const vertices = new Map<string, VertexState>();
  const executed = new Set<string>();
  const cached = new Set<string>();
  let imageId = '';
  let failed: { vertex: string; reason: string } | undefined;
  let streamError = '';

  const vertex = (digest: string): VertexState => {
    let v = vertices.get(digest);
    if (!v) {
      v = { name: '', lines: [], partial: '' };
      vertices.set(digest, v);
    }
    return v;
  };

  const handle = (line: string): void => {
    let event: { id?: string; aux?: unknown; error?: string; errorDetail?: { message?: string }; stream?: string };
    try {
      event = JSON.parse(line) as typeof event;
    } catch {
      return;
    }
    if (event.error || event.errorDetail) {
      streamError = event.errorDetail?.message ?? event.error ?? 'build failed';
      return;
    }
    if (event.id === 'moby.image.id') {
      imageId = (event.aux as { ID?: string } | undefined)?.ID ?? imageId;
      return;
    }
    if (event.id !== 'moby.buildkit.trace' || typeof event.aux !== 'string') {
      if (event.stream) req.onLog?.(event.stream.trimEnd());
      return;
    }
    const status = decodeStatus(event.aux);
    for (const v of status.vertexes) {
      const state = vertex(v.digest);
      state.name = v.name || state.name;
      const m = STEP.exec(state.name);
      if (v.error) {
        failed ??= { vertex: v.digest, reason: v.error };
        if (m) req.onStep?.({ stage: m[1] as string, name: state.name, state: 'failed' });
        continue;
      }
      if (!m) continue;
      const stage = m[1] as string;
      if (v.completed) {
        // FROM vertices "complete" without being cached: only steps that do work count.
        if (WORK.test(state.name)) (v.cached ? cached : executed).add(state.name);
        req.onStep?.({ stage, name: state.name, state: v.cached ? 'cached' : 'done' });
      } else if (v.started) {
        req.onStep?.({ stage, name: state.name, state: 'running' });
      }
    }
    for (const l of status.logs) {
      const state = vertex(l.vertex);
      const text = state.partial + l.text;
      const parts = text.split('\n');
      state.partial = parts.pop() ?? '';
      for (const p of parts) {
        state.lines.push(p);
        req.onLog?.(p);
      }
      if (state.lines.length > KEEP_LINES * 2) state.lines.splice(0, state.lines.length - KEEP_LINES);
    }
  };

  await new Promise<void>((resolve, reject) => {
    let buffer = '';
    stream.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const l of lines) if (l.trim()) handle(l);
    });
    stream.on('end', () => {
      if (buffer.trim()) handle(buffer);
      resolve();
    });
    stream.on('error', reject);
  });

  if (failed || streamError) {
    const state = failed ? vertices.get(failed.vertex) : undefined;
    const lines = state ? [...state.lines, ...(state.partial ? [state.partial] : [])].slice(-KEEP_LINES) : [];
    throw new BuildFailure(state?.name ?? '', lines.join('\n'), failed?.reason ?? streamError);
  }
  if (!imageId) {
    // Older daemons do not send moby.image.id: the tag is there all the same.
    imageId = (await docker.getImage(req.tag).inspect()).Id;
  }
  return { imageId, executed: [...executed], cached: [...cached] };
}
