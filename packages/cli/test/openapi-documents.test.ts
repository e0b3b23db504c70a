import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { z } from 'zod';
import { createApiServer, type ApiServer } from '@dirsync/api';
import { attributeMappingSchema } from '@dirsync/contracts';
import { close, connect, type Db } from '@dirsync/db';
import { providerKinds, validateSettings } from '@dirsync/providers';
import { requestSync } from '@dirsync/scheduler';
import { createTestDatabase, testRedisUrl, type TestDatabase } from '@dirsync/testkit';
import { openApiWriteCommand, publishedDocuments, stableJson } from '../src/openapi.ts';

// The documents committed under docs/api are what the running API serves and what the schemas
// give: a route or a settings field added without rewriting them fails here.

const docsDir = fileURLToPath(new URL('../../../docs/api/', import.meta.url));
const timeoutMs = 60_000;

let database: TestDatabase;
let db: Db;
let api: ApiServer;
let served: Record<string, unknown>;

beforeAll(async () => {
  database = await createTestDatabase('openapi_docs');
  db = connect(database.url, { max: 2 });
  api = await createApiServer({ db, connection: testRedisUrl, prefix: `openapi-docs-${process.pid}`, logger: pino({ level: 'silent' }), validateSettings, requestSync });
  const port = await api.listen(0, '127.0.0.1');
  const answer = await fetch(`http://127.0.0.1:${port}/v1/openapi.json`);
  expect(answer.status).toBe(200);
  served = (await answer.json()) as Record<string, unknown>;
}, timeoutMs);

afterAll(async () => {
  await api?.close();
  if (db) await close(db);
  await database?.drop();
}, timeoutMs);

test('every committed document is the current one', async () => {
  const stale: string[] = [];
  for (const [file, text] of Object.entries(publishedDocuments(served))) {
    const committed = await readFile(`${docsDir}${file}`, 'utf8').catch(() => '(missing)');
    if (committed !== text) stale.push(file);
  }
  if (stale.length > 0) throw new Error(`docs/api is out of date (${stale.join(', ')}): run ${openApiWriteCommand} and commit`);
});

test('the committed OpenAPI document is the served one, naming the schemas published beside it', async () => {
  const committed = JSON.parse(await readFile(`${docsDir}openapi.json`, 'utf8')) as Record<string, unknown>;
  const { 'x-dirsync-schemas': named, ...rest } = committed;
  expect(stableJson(rest)).toBe(stableJson(served));
  const files = named as { settings: Record<string, string>; attributeMapping: string };
  expect(Object.keys(files.settings).sort()).toEqual(Object.keys(providerKinds).sort());
  for (const file of [...Object.values(files.settings), files.attributeMapping]) {
    const schema = JSON.parse(await readFile(`${docsDir}${file}`, 'utf8')) as Record<string, unknown>;
    expect(schema['$id']).toBe(file);
  }
  // Routes are documented: a sample of the resources the API serves.
  expect(Object.keys(served['paths'] as object)).toEqual(expect.arrayContaining(['/v1/integrations', '/v1/runs/{id}', '/v1/changes']));
  // A body that may be left out is optional, described as the object it is when sent.
  const paths = served['paths'] as Record<string, Record<string, { requestBody?: { required?: boolean; content?: Record<string, { schema?: Record<string, unknown> }> } }>>;
  const enable = paths['/v1/integrations/{id}/enable']?.['post']?.requestBody;
  expect(enable?.required).toBe(false);
  expect(enable?.content?.['application/json']?.schema).toMatchObject({ type: 'object', properties: { sync: { enum: ['full'] } } });
});

test('the attribute mapping schema is the contracts schema, on the input side', async () => {
  const committed = JSON.parse(await readFile(`${docsDir}schemas/attribute-mapping.json`, 'utf8')) as Record<string, unknown>;
  const { $id: _id, title: _title, ...schema } = committed;
  expect(schema).toEqual(JSON.parse(JSON.stringify(z.toJSONSchema(attributeMappingSchema, { io: 'input', unrepresentable: 'any' }))));
});
