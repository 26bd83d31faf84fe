// The API's request and response shapes. Node input is the configuration file's
// NodeSchema: one definition, so the API and the YAML file accept the same nodes.
import { Type, type Static } from 'typebox';
import { Labels, Mac, NodeSchema } from '../config/schema.js';

export const MacParams = Type.Object({ mac: Mac });

export const NodeInputSchema = NodeSchema;
export const EnrolSchema = Type.Omit(NodeSchema, ['mac']);

const Str = Type.String();
const OptStr = Type.Optional(Type.String());

export const LeaseView = Type.Object({
  ip: Str,
  mac: Str,
  state: Str,
  expiresAt: Str,
  hostname: OptStr,
});

const SessionView = Type.Object({
  bootId: Str,
  state: Str,
  startedAt: Str,
  joinServed: Type.Boolean(),
  tokenId: OptStr,
  /** kubernetes.admission: approve: `pending` until an operator approves the boot, then `approved`. */
  approval: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('approved')])),
});

export const NodeView = Type.Object({
  mac: Str,
  hostname: Str,
  arch: Str,
  ip: OptStr,
  piSerial: OptStr,
  piModel: Type.Optional(Type.Integer()),
  image: Str,
  profiles: Type.Array(Str),
  labels: Labels,
  taints: Type.Array(Str),
  join: Type.Boolean(),
  origin: Type.Union([Type.Literal('config'), Type.Literal('api'), Type.Literal('unknown')]),
  lts: Type.Record(Type.String(), Type.String()),
  lease: Type.Optional(LeaseView),
  boot: Type.Optional(SessionView),
  lastEvent: Type.Optional(Type.Object({ at: Str, type: Str })),
});
export type NodeViewT = Static<typeof NodeView>;

export const NodeEventView = Type.Object({
  at: Str,
  type: Str,
  detail: Type.Optional(Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]))),
});

export const DiscoveredView = Type.Object({
  mac: Str,
  arch: OptStr,
  firmware: Str,
  piSerial: OptStr,
  piModel: Type.Optional(Type.Integer()),
  firstSeen: Str,
  lastSeen: Str,
});

export const ProfileView = Type.Object({
  name: Str,
  match: Type.Optional(
    Type.Object({ arch: OptStr, macPrefix: OptStr, label: Type.Optional(Labels), piModel: Type.Optional(Type.Integer()) }),
  ),
  image: OptStr,
  labels: Type.Optional(Labels),
  join: Type.Optional(Type.Boolean()),
});

export const ErrorView = Type.Object({ error: Str, message: Str, problems: Type.Optional(Type.Array(Str)) });

export const ReportSchema = Type.Object(
  {
    step: Type.String({ pattern: '^[a-z][a-z0-9-]{0,31}$', expected: 'a step name such as preinit, fstab, rcfile, booted, join' }),
    status: Type.Union([Type.Literal('ok'), Type.Literal('failed')], { expected: 'ok or failed' }),
    detail: Type.Optional(Type.String({ maxLength: 4096, expected: 'text of at most 4096 characters' })),
  },
  { additionalProperties: false },
);
