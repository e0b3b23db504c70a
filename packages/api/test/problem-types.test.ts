import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CURSOR_EXPIRED_PROBLEM } from '@dirsync/contracts';
import { problemTypes } from '../src/index.ts';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

// Every problem `type` the API answers with resolves to a page that says what it means, and is
// in the committed docs/api/problems.md.

const srcDir = fileURLToPath(new URL('../src/', import.meta.url));
const docsFile = fileURLToPath(new URL('../../../docs/api/problems.md', import.meta.url));

let api: ApiHarness;

beforeAll(async () => {
  api = await startApiHarness('api_problem_types');
});

afterAll(async () => {
  await api?.close();
});

async function sources(dir: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await sources(path)));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) files.push(path);
  }
  return files;
}

/** The codes the API's sources answer with: thrown problems, translated errors, the raw client-error answer. */
async function usedCodes(): Promise<Set<string>> {
  const codes = new Set<string>([CURSOR_EXPIRED_PROBLEM]);
  for (const file of await sources(srcDir)) {
    if (file.endsWith('problem-types.ts')) continue;
    const text = await readFile(file, 'utf8');
    for (const match of text.matchAll(/ProblemError\(\s*\d+,\s*'([a-z0-9-]+)'/g)) codes.add(match[1]!);
    for (const match of text.matchAll(/\[\d{3}, '([a-z0-9-]+)'\]|\bcode: '([a-z0-9-]+)'/g)) codes.add((match[1] ?? match[2])!);
    for (const match of text.matchAll(/\/v1\/problems\/\$\{[^}]*\}/g)) for (const quoted of match[0].matchAll(/'([a-z0-9-]+)'/g)) codes.add(quoted[1]!);
  }
  return codes;
}

test('every problem type the sources use is documented, and the catalogue lists nothing else', async () => {
  const used = await usedCodes();
  // The scan must find what it is meant to: a few codes from each way of answering.
  for (const code of ['not-found', 'insufficient-scope', 'database-unavailable', 'request-too-large', 'invalid-request', 'tenant-consent-required']) expect(used.has(code)).toBe(true);
  expect([...used].filter((code) => !Object.hasOwn(problemTypes, code)).sort()).toEqual([]);
  expect(Object.keys(problemTypes).filter((code) => !used.has(code)).sort()).toEqual([]);
});

test('docs/api/problems.md has a section (anchor) per type', async () => {
  const docs = await readFile(docsFile, 'utf8');
  const anchors = new Set([...docs.matchAll(/^## ([a-z0-9-]+)$/gm)].map((m) => m[1]));
  expect(Object.keys(problemTypes).filter((code) => !anchors.has(code))).toEqual([]);
});

test('the API serves each type at its URI; answers name types that resolve', async () => {
  for (const [code, type] of Object.entries(problemTypes)) {
    const response = await api.request('GET', `/v1/problems/${code}`);
    expect([code, response.status]).toEqual([code, 200]);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    const page = await response.text();
    expect(page).toContain(`<code>${code}</code>`);
    expect(page).toContain(type.title.replace(/'/g, '&#39;'));
  }
  const index = await (await api.request('GET', '/v1/problems')).text();
  for (const code of Object.keys(problemTypes)) expect(index).toContain(`href="/v1/problems/${code}"`);

  for (const unknown of ['no-such-type', '__proto__', 'constructor']) {
    const response = await api.request('GET', `/v1/problems/${unknown}`);
    expect([unknown, response.status]).toEqual([unknown, 404]);
  }

  // Real answers: their `type` is a page that exists.
  const unauthenticated = (await (await api.request('GET', '/v1/integrations')).json()) as { type: string };
  const missing = (await (await api.request('GET', '/v1/nothing-here')).json()) as { type: string };
  for (const { type } of [unauthenticated, missing]) {
    expect(type).toMatch(/^\/v1\/problems\/[a-z-]+$/);
    expect((await api.request('GET', type)).status).toBe(200);
  }
});
