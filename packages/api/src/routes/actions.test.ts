import { actionsFor } from './actions.ts';
import type { IntegrationHealthRow } from '@dirsync/db';

const now = new Date('2026-05-01T12:00:00Z');
const base: IntegrationHealthRow = {
  id: '0b6a53f4-5d0b-4c61-9d7e-4a0f0c1b2d3e',
  name: 'hq',
  kind: 'ldap',
  enabled: true,
  status: 'succeeded',
  settings: { bindDn: 'cn=reader,dc=example,dc=org' },
  hasSecret: true,
  lastRunId: '7f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0',
  lastRunError: null,
  lastRunFinishedAt: '2026-05-01T11:00:00Z',
  lastSuccessAt: '2026-05-01T11:00:00Z',
  createdAt: '2026-04-01T00:00:00Z',
};

test.each<[string, Partial<IntegrationHealthRow>, string[]]>([
  ['a healthy integration needs nothing', {}, []],
  ['a blocked run needs an approval', { status: 'blocked' }, ['blocked_run']],
  ['a failed run is failing', { status: 'failed', lastRunError: 'unavailable: ldap.example.com did not answer' }, ['failing']],
  ['a refused bind is a credential problem', { status: 'failed', lastRunError: 'auth: invalid credentials for cn=reader' }, ['credential_failed']],
  ['a bind DN without a password', { hasSecret: false }, ['missing_secret']],
  ['anonymous bind needs no password', { hasSecret: false, settings: {} }, []],
  ['a legacy Entra integration', { kind: 'entra_id', settings: { tenantId: 'contoso.onmicrosoft.com', legacyApp: { clientId: 'x' } } }, ['legacy_integration']],
  ['never synced after an hour', { lastSuccessAt: null, createdAt: '2026-05-01T10:00:00Z' }, ['never_synced']],
  ['a new integration gets its first sync first', { lastSuccessAt: null, createdAt: '2026-05-01T11:30:00Z' }, []],
  ['a disabled integration that never synced is left alone', { lastSuccessAt: null, enabled: false }, []],
])('%s', (_name, overrides, types) => {
  expect(actionsFor({ ...base, ...overrides }, now).map((a) => a.type)).toEqual(types);
});

test('an action names its integration, run and detail', () => {
  const [action] = actionsFor({ ...base, status: 'failed', lastRunError: 'auth: invalid credentials' }, now);
  expect(action).toEqual({
    type: 'credential_failed',
    integrationId: base.id,
    integrationName: 'hq',
    detail: expect.stringMatching(/refused the credentials: set a new secret/),
    runId: base.lastRunId,
    since: base.lastRunFinishedAt,
  });
});
