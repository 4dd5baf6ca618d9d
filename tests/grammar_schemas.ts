/**
 * The JSON Schemas of the constrained-decoding suite (tests/grammar_schema_test.ts): together
 * they cover every keyword `compileJsonSchema` supports. `draft7` marks schemas in draft-07
 * form (tuple `items`, `definitions`), validated by Ajv's draft-07 class.
 * @module
 */

/** One schema of the suite. */
export interface SuiteSchema {
  name: string;
  schema: Record<string, unknown>;
  draft7?: boolean;
}

/** The suite: 33 schemas. */
export const SCHEMAS: SuiteSchema[] = [
  { name: "boolean", schema: { type: "boolean" } },
  { name: "null", schema: { type: "null" } },
  { name: "integer range", schema: { type: "integer", minimum: -20, maximum: 300 } },
  {
    name: "integer exclusive bounds",
    schema: { type: "integer", exclusiveMinimum: 0, exclusiveMaximum: 10 },
  },
  { name: "integer minimum only", schema: { type: "integer", minimum: 1000 } },
  { name: "number", schema: { type: "number" } },
  { name: "number bounds", schema: { type: "number", minimum: -2.5, maximum: 3 } },
  {
    name: "number exclusive bounds",
    schema: { type: "number", exclusiveMinimum: 0, exclusiveMaximum: 1 },
  },
  { name: "string lengths", schema: { type: "string", minLength: 2, maxLength: 8 } },
  { name: "pattern", schema: { type: "string", pattern: "^[A-Z]{2}-\\d{3,4}$" } },
  {
    name: "pattern with escapes",
    schema: {
      type: "object",
      properties: {
        email: { type: "string", pattern: "^\\w{1,8}@\\w{1,8}\\.(com|org)$" },
        quoted: { type: "string", pattern: '^"[^"\\n]{0,6}"( \\\\ .)?$' },
      },
      required: ["email", "quoted"],
      additionalProperties: false,
    },
  },
  { name: "enum", schema: { enum: ["red", "green", "blue", 42, null, { a: [1] }] } },
  { name: "enum with type", schema: { type: ["string", "null"], enum: ["a", 1, null, "b"] } },
  { name: "enum unicode", schema: { enum: ["café", "日本", "😀", 'q"uote\\'] } },
  { name: "const", schema: { const: { version: 1, ok: true } } },
  {
    name: "object required",
    schema: {
      type: "object",
      properties: {
        name: { type: "string", maxLength: 12 },
        age: { type: "integer", minimum: 0, maximum: 150 },
      },
      required: ["name", "age"],
      additionalProperties: false,
    },
  },
  {
    name: "object optional",
    schema: {
      type: "object",
      properties: { a: { type: "boolean" }, b: { type: "integer" }, c: { type: "null" } },
      required: ["b"],
      additionalProperties: false,
    },
  },
  {
    name: "object all optional",
    schema: {
      type: "object",
      properties: {
        x: { type: "integer", minimum: -5, maximum: 5 },
        y: { enum: [true] },
      },
      additionalProperties: false,
    },
  },
  {
    name: "object map",
    schema: { type: "object", additionalProperties: { type: "integer", minimum: 0, maximum: 9 } },
  },
  { name: "any object", schema: { type: "object" } },
  {
    name: "false schemas",
    schema: {
      type: "object",
      properties: { gone: false, keep: { anyOf: [false, { type: "boolean" }] } },
      required: ["keep"],
      additionalProperties: false,
    },
  },
  { name: "empty object", schema: { type: "object", additionalProperties: false } },
  {
    name: "required without properties",
    schema: { type: "object", properties: { a: { type: "integer" } }, required: ["a", "b"] },
  },
  {
    name: "array bounds",
    schema: {
      type: "array",
      items: { type: "integer", minimum: 1, maximum: 6 },
      minItems: 2,
      maxItems: 4,
    },
  },
  {
    name: "prefixItems closed",
    schema: {
      type: "array",
      prefixItems: [{ type: "string", maxLength: 5 }, { type: "boolean" }],
      items: false,
      minItems: 1,
    },
  },
  {
    name: "prefixItems with items",
    schema: { type: "array", prefixItems: [{ const: "x" }], items: { type: "null" }, maxItems: 3 },
  },
  {
    name: "anyOf",
    schema: {
      anyOf: [{ type: "integer", minimum: 0, maximum: 9 }, { type: "string", maxLength: 3 }, {
        type: "null",
      }],
    },
  },
  {
    name: "oneOf tagged",
    schema: {
      oneOf: [
        {
          type: "object",
          properties: { kind: { const: "a" }, v: { type: "integer" } },
          required: ["kind", "v"],
          additionalProperties: false,
        },
        {
          type: "object",
          properties: { kind: { const: "b" }, w: { type: "boolean" } },
          required: ["kind", "w"],
          additionalProperties: false,
        },
      ],
    },
  },
  {
    name: "recursive $ref",
    schema: {
      $defs: {
        node: {
          type: "object",
          properties: {
            value: { type: "integer", minimum: 0, maximum: 99 },
            children: { type: "array", items: { $ref: "#/$defs/node" }, maxItems: 2 },
          },
          required: ["value"],
          additionalProperties: false,
        },
      },
      $ref: "#/$defs/node",
    },
  },
  {
    name: "type array",
    schema: { type: ["string", "integer", "null"], maxLength: 4, minimum: 0, maximum: 5 },
  },
  { name: "nullable", schema: { type: "string", nullable: true, maxLength: 3 } },
  {
    name: "formats",
    schema: {
      type: "object",
      properties: {
        d: { type: "string", format: "date" },
        t: { type: "string", format: "time" },
        dt: { type: "string", format: "date-time" },
        id: { type: "string", format: "uuid" },
      },
      required: ["d", "t", "dt", "id"],
      additionalProperties: false,
    },
  },
  {
    name: "formats: email, hostname, ipv4, uri",
    schema: {
      type: "array",
      prefixItems: [
        { type: "string", format: "email" },
        { type: "string", format: "hostname" },
        { type: "string", format: "ipv4" },
        { type: "string", format: "uri" },
      ],
      items: false,
      minItems: 4,
    },
  },
  {
    name: "draft-07 tuples and definitions",
    draft7: true,
    schema: {
      $schema: "http://json-schema.org/draft-07/schema#",
      definitions: {
        point: {
          type: "array",
          items: [{ type: "integer" }, { type: "integer" }],
          additionalItems: false,
          minItems: 2,
        },
      },
      type: "object",
      properties: {
        points: { type: "array", items: { $ref: "#/definitions/point" }, maxItems: 2 },
        label: { allOf: [{ type: "string", maxLength: 6 }] },
      },
      required: ["points"],
      additionalProperties: false,
    },
  },
];
