// BuildKit progress from dockerd's /build stream: lines of JSON whose `aux`
// (id "moby.buildkit.trace") is a base64 protobuf StatusResponse. dockerode 5
// ships the schema; its own followProgress flattens it to text, which loses
// which step a log line belongs to, so bootfarm decodes it here.
import { createRequire } from 'node:module';
import path from 'node:path';

interface Vertex {
  digest: string;
  name: string;
  started: boolean;
  completed: boolean;
  cached: boolean;
  error: string;
}

export interface StatusUpdate {
  vertexes: Vertex[];
  logs: { vertex: string; text: string }[];
}

interface ProtoType {
  decode(buf: Uint8Array): unknown;
  toObject(msg: unknown, opts: Record<string, unknown>): unknown;
}

let statusType: ProtoType | undefined;

function loadStatusType(): ProtoType {
  if (statusType) return statusType;
  // protobufjs is dockerode's dependency: resolve it (and the .proto) from there.
  const dockerodeMain = createRequire(import.meta.url).resolve('dockerode');
  const fromDockerode = createRequire(dockerodeMain);
  const protobuf = fromDockerode('protobufjs') as { loadSync(file: string): { lookupType(name: string): ProtoType } };
  const proto = path.join(path.dirname(dockerodeMain), 'proto', 'buildkit_status.proto');
  statusType = protobuf.loadSync(proto).lookupType('moby.buildkit.v1.StatusResponse');
  return statusType;
}

interface RawStatus {
  vertexes?: { digest?: string; name?: string; started?: unknown; completed?: unknown; cached?: boolean; error?: string }[];
  logs?: { vertex?: string; msg?: string }[];
}

export function decodeStatus(base64: string): StatusUpdate {
  if (!base64) return { vertexes: [], logs: [] };
  const type = loadStatusType();
  const raw = type.toObject(type.decode(Buffer.from(base64, 'base64')), { longs: String, bytes: String, defaults: true }) as RawStatus;
  return {
    vertexes: (raw.vertexes ?? []).map((v) => ({
      digest: v.digest ?? '',
      name: v.name ?? '',
      started: v.started != null,
      completed: v.completed != null,
      cached: v.cached === true,
      error: v.error ?? '',
    })),
    // bytes: String gives base64.
    logs: (raw.logs ?? []).map((l) => ({ vertex: l.vertex ?? '', text: Buffer.from(l.msg ?? '', 'base64').toString('utf8') })),
  };
}
