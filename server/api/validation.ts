// Request validation for the API: TypeBox compiled checks, with errors phrased
// like the configuration's ("body.hostname: expected a host name ..., got ...")
// by reading the `expected` phrase the shared schemas carry.
import type { FastifySchemaCompiler, FastifySchemaValidationError } from 'fastify';
import type { TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { Value } from 'typebox/value';
import { schemaAt } from '../config/schema-walk.js';

function valueAt(root: unknown, segments: string[]): unknown {
  let cur = root;
  for (const seg of segments) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (Array.isArray(value)) return 'a list';
  if (value !== null && typeof value === 'object') return 'an object';
  // What is left of parsed JSON: numbers, booleans, null.
  return typeof value === 'number' || typeof value === 'boolean' || value === null ? String(value) : typeof value;
}

/** One readable sentence per problem, naming the field. */
function explain(schema: TSchema, value: unknown, part: string): string[] {
  const root: unknown = schema;
  const out = new Set<string>();
  for (const err of Value.Errors(schema, value)) {
    const segments = err.instancePath
      ? err.instancePath
          .slice(1)
          .split('/')
          .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
      : [];
    const field = [part, ...segments].join('.');
    const params = err.params as { requiredProperties?: string[]; additionalProperties?: string[] };
    if (err.keyword === 'required') {
      for (const name of params.requiredProperties ?? [])
        out.add(`${field}.${name}: missing; expected ${schemaAt(root, [...segments, name])?.expected ?? 'a value'}`);
    } else if (err.keyword === 'additionalProperties') {
      const parent = schemaAt(root, segments);
      for (const name of params.additionalProperties ?? []) {
        out.add(
          parent?.keyExpected
            ? `${field}.${name}: invalid key; expected ${parent.keyExpected}`
            : `${field}.${name}: unknown field; expected one of ${Object.keys(parent?.properties ?? {}).join(', ')}`,
        );
      }
    } else if (err.keyword !== 'boolean') {
      const expected = schemaAt(root, segments)?.expected;
      out.add(`${field}: ${expected ? `expected ${expected}` : err.message}, got ${describe(valueAt(value, segments))}`);
    }
  }
  return [...out];
}

export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = Compile(schema);
  const part = httpPart === 'body' ? 'body' : httpPart === 'params' ? 'params' : httpPart === 'querystring' ? 'query' : String(httpPart);
  return (input: unknown) => {
    const value = httpPart === 'body' ? input : Value.Convert(schema, input);
    if (check.Check(value)) return { value };
    const problems = explain(schema, value, part);
    const error: FastifySchemaValidationError[] = problems.map((message) => ({
      keyword: 'bootfarm',
      instancePath: '',
      schemaPath: '',
      params: {},
      message,
    }));
    return { error };
  };
};
