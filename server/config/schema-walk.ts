// Finding the schema node behind an error's path, shared by the configuration
// loader and the API's request validation: both phrase problems with the
// `expected` / `keyExpected` annotations the schemas carry.

export interface AnnotatedSchema {
  expected?: string;
  keyExpected?: string;
  properties?: Record<string, unknown>;
  patternProperties?: Record<string, unknown>;
  items?: unknown;
  prefixItems?: unknown[];
  anyOf?: unknown[];
}

/**
 * The schema at `segments` (object keys, array indexes as numbers or digit
 * strings), or undefined. A union with an object member is entered through that
 * member; a record's keys all lead to its value schema.
 */
export function schemaAt(root: unknown, segments: ReadonlyArray<string | number>): AnnotatedSchema | undefined {
  let schema = root as AnnotatedSchema | undefined;
  for (const seg of segments) {
    if (!schema) return undefined;
    const index = typeof seg === 'number' ? seg : /^\d+$/.test(seg) ? Number(seg) : undefined;
    if (index !== undefined && (schema.items !== undefined || schema.prefixItems !== undefined)) {
      schema = (Array.isArray(schema.prefixItems) ? schema.prefixItems[index] : schema.items) as AnnotatedSchema | undefined;
    } else {
      const key = String(seg);
      schema = (schema.properties?.[key] ?? (schema.patternProperties ? Object.values(schema.patternProperties)[0] : undefined)) as
        AnnotatedSchema | undefined;
    }
    const objectMember = schema?.anyOf?.find((s) => (s as AnnotatedSchema).properties) as AnnotatedSchema | undefined;
    if (objectMember) schema = objectMember;
  }
  return schema;
}
