import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import pino from 'pino';
import { z } from 'zod';
import { createApiServer, problemTypesMarkdown } from '@dirsync/api';
import { attributeMappingSchema, integrationKinds } from '@dirsync/contracts';
import { providerKinds, validateSettings } from '@dirsync/providers';

// The API's published documents: the OpenAPI document the API serves, and JSON Schemas of what
// it accepts as free-form JSON (each kind's `settings`, the attribute mapping), which the
// OpenAPI document names under `x-dirsync-schemas`. They are committed under docs/api and
// written by `dirsync openapi --write docs/api`; a test compares them with the running API.

/** The command that writes the documents, as a failing check tells it. */
export const openApiWriteCommand = 'pnpm dirsync openapi --write docs/api';

/** File (relative to the documents' directory) of the JSON Schema of a kind's settings. */
export function settingsSchemaFile(kind: string): string {
  return `schemas/${kind}.settings.json`;
}

/** File of the JSON Schema of the attribute mapping (`settings.attributeMapping`). */
export const attributeMappingSchemaFile = 'schemas/attribute-mapping.json';

/** JSON with object keys sorted at every depth, two-space indented, one trailing newline. */
export function stableJson(value: unknown): string {
  const sorted = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sorted);
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((key) => [key, sorted((v as Record<string, unknown>)[key])]),
      );
    }
    return v;
  };
  return `${JSON.stringify(sorted(value), null, 2)}\n`;
}

// Requests send settings, so the schemas describe the input side (defaults may be left out).
// A refinement or transform has no JSON Schema form: it is left open there and the API still
// checks it (the problem lists every field that fails).
function jsonSchemaOf(schema: z.ZodType, id: string, title: string): Record<string, unknown> {
  return { $id: id, title, ...z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) };
}

/** The JSON Schemas published with the OpenAPI document, by file name. */
export function publishedJsonSchemas(): Record<string, Record<string, unknown>> {
  const files: Record<string, Record<string, unknown>> = {};
  for (const kind of integrationKinds) {
    const entry = providerKinds[kind];
    files[settingsSchemaFile(kind)] = jsonSchemaOf(entry.settingsSchema, settingsSchemaFile(kind), `settings of a ${kind} integration (${entry.description})`);
  }
  files[attributeMappingSchemaFile] = jsonSchemaOf(attributeMappingSchema, attributeMappingSchemaFile, 'attribute mapping of an integration (settings.attributeMapping)');
  return files;
}

/**
 * The committed OpenAPI document: the document the API serves, naming the JSON Schemas that are
 * published beside it (paths relative to the document).
 */
export function publishedOpenApi(served: Record<string, unknown>): Record<string, unknown> {
  return {
    ...served,
    'x-dirsync-schemas': {
      settings: Object.fromEntries(integrationKinds.map((kind) => [kind, settingsSchemaFile(kind)])),
      attributeMapping: attributeMappingSchemaFile,
    },
  };
}

/** Every published document by file name (relative to docs/api), as written. */
export function publishedDocuments(served: Record<string, unknown>): Record<string, string> {
  const documents: Record<string, string> = { 'openapi.json': stableJson(publishedOpenApi(served)) };
  for (const [file, schema] of Object.entries(publishedJsonSchemas())) documents[file] = stableJson(schema);
  // What each problem `type` of the API's error answers means (the API serves the same pages).
  documents['problems.md'] = problemTypesMarkdown();
  return documents;
}

/**
 * The OpenAPI document the API serves, from an API built in this process without PostgreSQL or
 * Redis (building the routes connects to neither; nothing is listened on).
 */
export async function servedOpenApi(): Promise<Record<string, unknown>> {
  const server = await createApiServer({
    // Never queried: only the document is asked for.
    db: {} as never,
    connection: 'redis://127.0.0.1:1',
    prefix: 'dirsync-openapi',
    logger: pino({ level: 'silent' }),
    validateSettings,
    requestSync: () => Promise.reject(new Error('not served')),
  });
  try {
    const answer = await server.app.inject({ method: 'GET', url: '/v1/openapi.json' });
    if (answer.statusCode !== 200) throw new Error(`the API answered ${answer.statusCode} for its OpenAPI document`);
    return answer.json<Record<string, unknown>>();
  } finally {
    await server.close();
  }
}

/** Writes every published document under `dir`; returns the files written. */
export async function writePublishedDocuments(dir: string, served: Record<string, unknown>): Promise<string[]> {
  const documents = publishedDocuments(served);
  for (const [file, text] of Object.entries(documents)) {
    await mkdir(dirname(join(dir, file)), { recursive: true });
    await writeFile(join(dir, file), text);
  }
  return Object.keys(documents);
}

/** Files under `dir` that differ from (or lack) what would be written now. */
export async function stalePublishedDocuments(dir: string, served: Record<string, unknown>): Promise<string[]> {
  const stale: string[] = [];
  for (const [file, text] of Object.entries(publishedDocuments(served))) {
    const committed = await readFile(join(dir, file), 'utf8').catch(() => undefined);
    if (committed !== text) stale.push(file);
  }
  return stale;
}
