import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startApiHarness, type ApiHarness } from './api-harness.ts';

// The README's "Over HTTP" request of each directory kind (Configure → Directory kinds), sent as
// written to a real API: an LDAP kind's body creates the integration with exactly the settings
// of the kind's settings example, and the Entra ID body without a consent gets the refusal the
// README names.

const readme = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');

interface KindExamples {
  readonly settings: unknown;
  readonly body: { kind: string; name: string; settings: unknown; secret?: string };
}

function examples(): Map<string, KindExamples> {
  const start = readme.indexOf('\n### Directory kinds\n');
  const end = readme.indexOf('\n### ', start + 1);
  const found = new Map<string, KindExamples>();
  for (const part of readme.slice(start, end).split(/\n#### /).slice(1)) {
    const kind = /^`([a-z_]+)`/.exec(part)?.[1];
    if (kind === undefined) continue;
    const settings = /```json\n([\s\S]*?)```/.exec(part)?.[1];
    const body = /-d @- <<'EOF'\n([\s\S]*?)\nEOF\n/.exec(part)?.[1];
    if (settings === undefined || body === undefined) throw new Error(`the README's ${kind} lacks its settings or its request body`);
    found.set(kind, { settings: JSON.parse(settings), body: JSON.parse(body) as KindExamples['body'] });
  }
  return found;
}

let api: ApiHarness;
let token: string;

beforeAll(async () => {
  api = await startApiHarness('readme_bodies');
  token = await api.key(await api.account('readme'), ['read', 'sync', 'admin']);
}, 60_000);

afterAll(async () => {
  await api?.close();
});

test('the README has a request body for every kind it documents', () => {
  expect([...examples().keys()].sort()).toEqual(['active_directory', 'domino', 'entra_id', 'ldap']);
});

test.each(['ldap', 'active_directory', 'domino'])("the README's POST /v1/integrations body of %s creates it with the kind's example settings", async (kind) => {
  const { settings, body } = examples().get(kind)!;
  expect(body.kind).toBe(kind);
  expect(body.settings).toEqual(settings);
  const response = await api.request('POST', '/v1/integrations', { token, body });
  const created = (await response.json()) as { id: string; kind: string; name: string; hasSecret: boolean; settings: Record<string, unknown> };
  expect({ status: response.status, kind: created.kind, name: created.name, hasSecret: created.hasSecret }).toEqual({ status: 201, kind, name: body.name, hasSecret: true });
  // What was given is stored (defaults filled in beside it).
  expect(created.settings).toMatchObject(settings as Record<string, unknown>);
});

test("the README's Entra ID body without the account's consent is refused as the README says", async () => {
  const { settings, body } = examples().get('entra_id')!;
  expect(body.settings).toEqual(settings);
  expect(body.secret).toBeUndefined();
  const response = await api.request('POST', '/v1/integrations', { token, body });
  const problem = (await response.json()) as { type: string; status: number };
  expect({ status: response.status, type: problem.type }).toEqual({ status: 403, type: '/v1/problems/tenant-consent-required' });
});
