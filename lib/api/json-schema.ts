/**
 * joi → JSON Schema 2020-12, for the subset the contract schemas use. joi is where every contract shape is
 * declared; the OpenAPI document and the event's published schema are this function's output, never written by
 * hand, and a property test (test/unit/openapi.test.ts) holds joi's and Ajv's verdicts equal.
 */
import type Joi from 'joi';

export type JsonSchema = { [key: string]: unknown };

interface Described {
  type?: string;
  flags?: {
    presence?: string;
    unknown?: boolean;
    id?: string;
    description?: string;
    default?: unknown;
    only?: boolean;
  };
  allow?: unknown[];
  keys?: Record<string, Described>;
  items?: Described[];
  matches?: Array<{ schema?: Described }>;
  metas?: Array<Record<string, unknown>>;
  rules?: Array<{ name: string; args?: { limit?: number; regex?: string } }>;
}

/**
 * Converts a joi schema. Nested schemas carrying a joi `.id()` that names one of `refs` become `$ref`s to
 * `#/components/schemas/<id>`, so a shared shape appears once in a document.
 */
export function joiToJsonSchema(schema: Joi.Schema, refs: ReadonlySet<string> = new Set()): JsonSchema {
  return convert(schema.describe() as Described, refs, true);
}

function convert(d: Described, refs: ReadonlySet<string>, root = false): JsonSchema {
  const id = d.flags?.id;
  if (!root && id !== undefined && refs.has(id)) return { $ref: `#/components/schemas/${id}` };
  const out: JsonSchema = {};
  const rule = (name: string) => d.rules?.find((r) => r.name === name)?.args;
  const nullable = d.allow?.includes(null) === true;
  const only = d.flags?.only === true ? (d.allow ?? []).filter((v) => v !== null) : undefined;
  switch (d.type) {
    case 'object': {
      out.type = 'object';
      if (d.keys) {
        out.properties = Object.fromEntries(Object.entries(d.keys).map(([k, v]) => [k, convert(v, refs)]));
        const required = Object.entries(d.keys)
          .filter(([, v]) => v.flags?.presence === 'required')
          .map(([k]) => k);
        if (required.length > 0) out.required = required;
      }
      out.additionalProperties = d.keys === undefined || d.flags?.unknown === true;
      break;
    }
    case 'string': {
      if (only !== undefined) {
        out.enum = only;
        break;
      }
      out.type = 'string';
      // joi's string() refuses '' unless allow('') is set, which JSON Schema says with minLength.
      out.minLength = rule('min')?.limit ?? 1;
      const max = rule('max')?.limit;
      if (max !== undefined) out.maxLength = max;
      const regex = rule('pattern')?.regex;
      if (regex !== undefined) out.pattern = regex.slice(regex.indexOf('/') + 1, regex.lastIndexOf('/'));
      break;
    }
    case 'number':
    case 'decimalInteger': {
      if (only !== undefined) {
        out.enum = only;
        break;
      }
      out.type = d.type === 'decimalInteger' || rule('integer') !== undefined ? 'integer' : 'number';
      const min = rule('min')?.limit;
      const max = rule('max')?.limit;
      if (min !== undefined) out.minimum = min;
      if (max !== undefined) out.maximum = max;
      break;
    }
    case 'boolean':
      out.type = 'boolean';
      break;
    case 'array': {
      out.type = 'array';
      const item = d.items?.[0];
      if (item) out.items = convert(item, refs);
      const min = rule('min')?.limit;
      const max = rule('max')?.limit;
      if (min !== undefined) out.minItems = min;
      if (max !== undefined) out.maxItems = max;
      break;
    }
    case 'alternatives':
      out.oneOf = (d.matches ?? []).flatMap((m) => (m.schema ? [convert(m.schema, refs)] : []));
      break;
    case 'any':
      if (only !== undefined) out.enum = only;
      break;
    default:
      throw new Error(`joiToJsonSchema: unsupported joi type ${String(d.type)}`);
  }
  if (nullable && typeof out.type === 'string') out.type = [out.type, 'null'];
  if (d.flags?.description !== undefined) out.description = d.flags.description;
  if (d.flags?.default !== undefined && typeof d.flags.default !== 'function') out.default = d.flags.default;
  for (const meta of d.metas ?? []) Object.assign(out, meta);
  return out;
}
