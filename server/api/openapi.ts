// The configuration schemas are JSON Schema 2020-style with bootfarm's own
// annotations; OpenAPI 3.0.3 Schema Objects are a stricter dialect. This turns
// one into the other for /openapi.json: `expected` becomes the description and
// `x-expected`, a record's `patternProperties` becomes `additionalProperties`
// with the key pattern kept as `x-key-pattern`.
type Json = unknown;

function convert(node: Json): Json {
  if (Array.isArray(node)) return node.map(convert);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, Json> = {};
  for (const [key, value] of Object.entries(node as Record<string, Json>)) {
    if (key === 'expected') {
      out['x-expected'] = value;
      if (!(node as Record<string, Json>).description) out.description = `expected ${String(value)}`;
    } else if (key === 'keyExpected') {
      out['x-key-expected'] = value;
    } else if (key === 'patternProperties' && value && typeof value === 'object') {
      const [[pattern, schema]] = Object.entries(value as Record<string, Json>) as [[string, Json]];
      out.additionalProperties = convert(schema);
      out['x-key-pattern'] = pattern;
    } else if (key === 'additionalProperties' && (node as Record<string, Json>).patternProperties) {
      // replaced by the pattern's value schema above
    } else {
      out[key] = convert(value);
    }
  }
  return out;
}

/** For @fastify/swagger's transformObject: the generated document, made valid OpenAPI 3.0.3. */
export function toOpenApi30(document: Json): Json {
  const doc = document as Record<string, Json>;
  return { ...doc, paths: convert(doc.paths), components: convert(doc.components) };
}
