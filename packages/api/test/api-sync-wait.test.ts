import { claimIntegrationFence, completeRunAttempt, failRunAttempt, startRunAttempt } from '@dirsync/db';
import type { DirsyncClient, Run, SyncAnswer as SyncAccepted } from '@dirsync/client';
import { ldapSettings, startApiHarness, type ApiHarness } from './api-harness.ts';

// `POST /v1/integrations/{id}/syncs` with `wait`: the run is moved along by the same recorder
// functions a worker calls (no worker listens on this queue prefix, so the job stays waiting and
// later requests join it).

let api: ApiHarness;
let token: string;
let client: DirsyncClient;

beforeAll(async () => {
  api = await startApiHarness('api_sync_wait');
  const account = await api.account('waiting');
  token = await api.key(account, ['admin']);
  client = api.client(token);
});

afterAll(async () => {
  await api.close();
});

async function requestSync(integrationId: string, body: Record<string, unknown>): Promise<{ status: number; location: string | null; body: SyncAccepted }> {
  const response = await api.request('POST', `/v1/integrations/${integrationId}/syncs`, { token, body });
  return { status: response.status, location: response.headers.get('location'), body: (await response.json()) as SyncAccepted };
}

const report = {
  status: 'succeeded',
  mode: 'full',
  reason: 'requested full',
  fetched: 12,
  unchanged: 0,
  failed: 0,
  wouldDelete: 0,
  issues: [],
  issueCount: 0,
  durationMs: 40,
} as const;

test('wait answers 202 with the run as it stands, then 200 with the final run; a retrying run shows its attempts and last error', async () => {
  const integration = await client.createIntegration({ kind: 'ldap', name: 'waited', settings: ldapSettings(), secret: 'pw-1' });
  const queued = await requestSync(integration.id, { mode: 'full' });
  expect(queued.status).toBe(202);
  expect(queued.body.run).toBeUndefined();
  const { runId } = queued.body;

  const stillQueued = await requestSync(integration.id, { mode: 'full', wait: 1 });
  expect(stillQueued).toMatchObject({ status: 202, location: `/v1/runs/${runId}`, body: { runId, deduplicated: true, run: { id: runId, status: 'queued', attempt: 0, maxAttempts: null, lastError: null } } });

  // First attempt fails and the queue will try again.
  const first = { runId, integrationId: integration.id, fence: `1:${runId}:a` };
  await claimIntegrationFence(api.db, integration.id, first.fence);
  await startRunAttempt(api.db, { ...first, attempt: 1, maxAttempts: 3, workerId: 'worker-a' });
  await failRunAttempt(api.db, { ...first, error: 'LDAP server did not answer in 30 s', willRetry: true, durationMs: 30_000, markIntegration: true });
  const retrying = await requestSync(integration.id, { mode: 'full', wait: 1 });
  expect(retrying.status).toBe(202);
  expect(retrying.body.run).toMatchObject({ status: 'retrying', attempt: 1, maxAttempts: 3, lastError: 'LDAP server did not answer in 30 s', error: null });
  expect(await client.getRun(runId)).toMatchObject({ status: 'retrying', attempt: 1, maxAttempts: 3, lastError: 'LDAP server did not answer in 30 s' });

  // The second attempt runs; the request waits for it to end.
  const second = { runId, integrationId: integration.id, fence: `2:${runId}:b` };
  await claimIntegrationFence(api.db, integration.id, second.fence);
  await startRunAttempt(api.db, { ...second, attempt: 2, maxAttempts: 3, workerId: 'worker-b' });
  const waiting = requestSync(integration.id, { mode: 'full', wait: 60 });
  let answered = false;
  void waiting.then(() => (answered = true));
  // Read through the API meanwhile: the run is still running, so the waiting request has not answered.
  expect(await client.getRun(runId)).toMatchObject({ status: 'running', attempt: 2 });
  expect(answered).toBe(false);
  await completeRunAttempt(api.db, { ...second, report, markIntegration: true });

  const ended = await waiting;
  expect(ended.status).toBe(200);
  const run = ended.body.run as Run;
  expect(run).toMatchObject({ id: runId, status: 'succeeded', mode: 'full', attempt: 2, maxAttempts: 3, workerId: 'worker-b', error: null });
  expect(run.counts.fetched).toBe(12);
  expect(run.finishedAt).not.toBeNull();
});

test('a final run answers at once; wait is bounded and checked', async () => {
  const integration = await client.createIntegration({ kind: 'ldap', name: 'bounded', settings: ldapSettings(), secret: 'pw-2' });
  const { body } = await requestSync(integration.id, { mode: 'full' });
  const attempt = { runId: body.runId, integrationId: integration.id, fence: `1:${body.runId}:c` };
  await claimIntegrationFence(api.db, integration.id, attempt.fence);
  await startRunAttempt(api.db, { ...attempt, attempt: 1, maxAttempts: 1, workerId: 'worker-c' });
  await failRunAttempt(api.db, { ...attempt, error: 'bind refused', willRetry: false, durationMs: 10, markIntegration: true });

  // The failed run's job is still waiting (nothing consumed it), so this request joins that run, already final.
  const started = Date.now();
  const answer = await requestSync(integration.id, { mode: 'full', wait: 300 });
  expect(answer.status).toBe(200);
  expect(answer.body.run).toMatchObject({ id: body.runId, status: 'failed', error: 'bind refused', attempt: 1, maxAttempts: 1 });
  expect(Date.now() - started).toBeLessThan(10_000);

  for (const wait of [301, -1, 1.5, '10']) {
    const refused = await api.request('POST', `/v1/integrations/${integration.id}/syncs`, { token, body: { wait } });
    expect(refused.status).toBe(400);
  }
});

test('the OpenAPI document describes wait and the 200 answer', async () => {
  const doc = (await (await api.request('GET', '/v1/openapi.json')).json()) as {
    paths: Record<string, Record<string, { requestBody?: unknown; responses: Record<string, unknown> }>>;
  };
  const operation = doc.paths['/v1/integrations/{id}/syncs']?.post;
  expect(JSON.stringify(operation?.requestBody)).toContain('"wait"');
  expect(Object.keys(operation?.responses ?? {})).toEqual(expect.arrayContaining(['200', '202']));
});
