import { generateKeyPairSync, randomUUID } from 'node:crypto';
import {
  createAccount,
  createConnector,
  createIntegration,
  createKeyRing,
  createWebhookEndpoint,
  type Db,
  generateSecretKey,
  getWebhookEndpoint,
  headWebhookDelivery,
  leaseWebhookEndpoint,
  listWebhookDeliveries,
  markConsentRevoked,
  pruneHistory,
  pruneWebhookDeliveries,
  recordRotationOutcome,
  recordWebhookAttempt,
  recordWebhookEvent,
  reflectConsentStatus,
  releaseWebhookEndpoint,
  revokeConsent,
  updateWebhookEndpoint,
  type NewCertificateCredential,
} from '../src/index.ts';
import { useTestDatabase } from './support/database.ts';
import { planReads } from './support/plans.ts';

// Where the facts that concern an account's webhooks are recorded: connector events go to every
// account whose integrations use the connector and to no other, consent events to the consent's
// account once per change, old deliveries are pruned in bounded batches, pending ones never, and
// an attempt refused before sending disables its endpoint at once.

let db: Db;
let databaseUrl: string;
useTestDatabase('webhooks_db', 4, (ready, database) => {
  db = ready;
  databaseUrl = database.url;
});
const ring = createKeyRing({ current: generateSecretKey() });

function certificate(): NewCertificateCredential {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const hex = randomUUID().replaceAll('-', '').toUpperCase().padEnd(40, '0');
  return {
    certificatePem: '-----BEGIN CERTIFICATE-----\nTEST\n-----END CERTIFICATE-----\n',
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    thumbprint: hex,
    thumbprintSha256: hex.padEnd(64, '0'),
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 30 * 24 * 3600_000),
  };
}

async function connector() {
  const suffix = String(Math.floor(Math.random() * 1e12)).padStart(12, '0');
  return createConnector(
    db,
    ring,
    { name: `hooks ${suffix}`, description: 'webhook events', clientId: `11111111-2222-4333-8444-${suffix}`, applicationObjectId: `99999999-2222-4333-8444-${suffix}`, homeTenantId: randomUUID(), redirectUri: 'https://dirsync.example/entra/consent' },
    certificate(),
  );
}

/** Event types delivered to an endpoint, oldest first. */
async function typesFor(endpointId: string): Promise<string[]> {
  const rows = await db.$client<{ type: string }[]>`
    select e.type from webhook_deliveries d join webhook_events e on e.id = d.event_id where d.endpoint_id = ${endpointId} order by d.seq`;
  return rows.map((r) => r.type);
}

test("a failed rotation is an event of every account using the connector, and of no other", async () => {
  const used = await connector();
  const user = (await createAccount(db, { name: `user-${randomUUID()}` })).id;
  const bystander = (await createAccount(db, { name: `bystander-${randomUUID()}` })).id;
  await createIntegration(db, { accountId: user, kind: 'entra_id', name: 'entra', settings: { tenantId: 'contoso.onmicrosoft.com', connectorId: used.id } });
  const mine = (await createWebhookEndpoint(db, ring, { accountId: user, url: 'https://hooks.example.com/a', events: ['*'] })).endpoint;
  const theirs = (await createWebhookEndpoint(db, ring, { accountId: bystander, url: 'https://hooks.example.com/b', events: ['*'] })).endpoint;
  const onlyRuns = (await createWebhookEndpoint(db, ring, { accountId: user, url: 'https://hooks.example.com/c', events: ['run.failed'] })).endpoint;
  await recordRotationOutcome(db, used.id, { status: 'failed', error: 'Graph refused the new key' });
  expect(await typesFor(mine.id)).toEqual(['rotation.failed', 'action.needed']);
  expect(await typesFor(theirs.id)).toEqual([]);
  expect(await typesFor(onlyRuns.id)).toEqual([]);
  await recordRotationOutcome(db, used.id, { status: 'succeeded' });
  expect(await typesFor(mine.id)).toEqual(['rotation.failed', 'action.needed']);
});

test('consent needed is an event once per change of state; a revocation by Entra ID asks for action, one by the account does not', async () => {
  const used = await connector();
  const account = (await createAccount(db, { name: `consent-${randomUUID()}` })).id;
  const integration = await createIntegration(db, { accountId: account, kind: 'entra_id', name: 'entra', settings: { tenantId: 'fabrikam.onmicrosoft.com', connectorId: used.id } });
  const hook = (await createWebhookEndpoint(db, ring, { accountId: account, url: 'https://hooks.example.com/consent', events: ['consent.needed', 'consent.revoked', 'action.needed'] })).endpoint;

  expect(await reflectConsentStatus(db, integration.id)).toBe(true);
  expect(await reflectConsentStatus(db, integration.id)).toBe(true);
  expect(await typesFor(hook.id)).toEqual(['consent.needed', 'action.needed']);

  await db.$client`insert into entra_consents (account_id, connector_id, tenant_id, status, granted_at) values (${account}, ${used.id}, 'fabrikam.onmicrosoft.com', 'granted', now())`;
  await db.$client`update integrations set status = 'succeeded' where id = ${integration.id}`;
  expect(await markConsentRevoked(db, account, used.id, 'fabrikam.onmicrosoft.com', 'AADSTS7000229: consent revoked')).toBe(1);
  expect((await typesFor(hook.id)).slice(2)).toEqual(['consent.revoked', 'action.needed']);

  await db.$client`update entra_consents set status = 'granted', revoked_at = null where account_id = ${account}`;
  expect(await revokeConsent(db, { accountId: account, connectorId: used.id, tenantId: 'fabrikam.onmicrosoft.com', actor: 'test' })).toBe(true);
  expect((await typesFor(hook.id)).slice(4)).toEqual(['consent.revoked']);
  // Nothing to revoke: no event.
  expect(await markConsentRevoked(db, account, used.id, 'other.onmicrosoft.com', 'no such consent')).toBe(0);
  expect(await typesFor(hook.id)).toHaveLength(5);
});

test('finished deliveries older than the retention go in bounded batches; pending ones and recent ones stay', async () => {
  const account = (await createAccount(db, { name: `prune-${randomUUID()}` })).id;
  const hook = (await createWebhookEndpoint(db, ring, { accountId: account, url: 'https://hooks.example.com/prune', events: ['*'] })).endpoint;
  for (let i = 0; i < 7; i++) await recordWebhookEvent(db, { accountId: account, type: 'run.finished', data: { i } });
  const ids = (await db.$client<{ id: string }[]>`select id from webhook_deliveries where endpoint_id = ${hook.id} order by seq`).map((r) => r.id);
  // Five old and finished, one old but pending, one recent and finished.
  await db.$client`update webhook_deliveries set status = 'succeeded', created_at = now() - interval '40 days' where id = any(${ids.slice(0, 5)}::uuid[])`;
  await db.$client`update webhook_deliveries set created_at = now() - interval '40 days' where id = ${ids[5]!}`;
  await db.$client`update webhook_deliveries set status = 'failed' where id = ${ids[6]!}`;
  await db.$client`update webhook_events set created_at = now() - interval '40 days' where id in (select event_id from webhook_deliveries where id = any(${ids.slice(0, 6)}::uuid[]))`;

  expect(await pruneWebhookDeliveries(db, { days: 30, batchSize: 2 })).toEqual({ deliveries: 2, events: 2 });
  const all = await pruneHistory(db, { runs: { days: 0, keep: 1 }, audit: { days: 0 }, webhooks: { days: 30, batchSize: 2 } });
  expect(all.webhooks).toBe(3);
  const left = (await db.$client<{ id: string }[]>`select id from webhook_deliveries where endpoint_id = ${hook.id} order by seq`).map((r) => r.id);
  expect(left).toEqual(ids.slice(5));
  expect(await pruneWebhookDeliveries(db, { days: 0 })).toEqual({ deliveries: 0, events: 0 });
});

test('a refused attempt disables the endpoint with the refusal as its reason and keeps the delivery pending, its last attempt or not; on an endpoint already disabled it changes nothing else', async () => {
  const account = (await createAccount(db, { name: `refused-${randomUUID()}` })).id;
  const hook = (await createWebhookEndpoint(db, ring, { accountId: account, url: 'https://hooks.example.com/refused', events: ['run.finished'] })).endpoint;
  const watcher = (await createWebhookEndpoint(db, ring, { accountId: account, url: 'https://ops.example.com/actions', events: ['action.needed'] })).endpoint;
  await recordWebhookEvent(db, { accountId: account, type: 'run.finished', data: {} });
  const refusal = 'https://hooks.example.com:443 resolves to 10.0.0.5, a private address, which this installation does not allow';
  const attempt = async (token: string) => {
    const head = (await headWebhookDelivery(db, hook.id))!;
    // The last of its attempts by count: a refusal still does not give it up.
    await db.$client`update webhook_deliveries set attempts = 7 where id = ${head.id}`;
    return recordWebhookAttempt(db, { endpointId: hook.id, deliveryId: head.id, token, ok: false, statusCode: null, error: refusal, retryInMs: null, gone: false, refused: true, disableAfter: 20 });
  };

  const token = randomUUID();
  expect(await leaseWebhookEndpoint(db, ring, hook.id, token, 10_000)).toBeDefined();
  expect(await attempt(token)).toEqual({ recorded: true, disabled: true, failureStreak: 1, notify: [watcher.id] });
  await releaseWebhookEndpoint(db, hook.id, token);
  expect(await getWebhookEndpoint(db, account, hook.id)).toMatchObject({ enabled: false, failureStreak: 1, disabledReason: `refused before anything was sent, not retried: ${refusal}` });
  const [delivery] = await db.$client<{ status: string; attempts: number; next_attempt_at: Date | null; last_error: string }[]>`
    select status, attempts, next_attempt_at, last_error from webhook_deliveries where endpoint_id = ${hook.id}`;
  expect(delivery).toEqual({ status: 'pending', attempts: 8, next_attempt_at: null, last_error: refusal });
  const notice = await db.$client<{ body: string }[]>`
    select e.body from webhook_deliveries d join webhook_events e on e.id = d.event_id where d.endpoint_id = ${watcher.id}`;
  expect(notice.map((n) => (JSON.parse(n.body) as { data: unknown }).data)).toEqual([
    { action: 'webhook_disabled', webhookId: hook.id, url: hook.url, detail: `refused before anything was sent, not retried: ${refusal}` },
  ]);

  // Disabled by an administrator while an attempt was under way: the administrator's reason stays, no one is told again.
  await updateWebhookEndpoint(db, account, hook.id, { enabled: true });
  await updateWebhookEndpoint(db, account, hook.id, { enabled: false });
  const again = randomUUID();
  expect(await leaseWebhookEndpoint(db, ring, hook.id, again, 10_000)).toBeDefined();
  expect(await attempt(again)).toEqual({ recorded: true, disabled: false, failureStreak: 1, notify: [] });
  expect((await getWebhookEndpoint(db, account, hook.id))?.disabledReason).toBe('disabled by an administrator');
  expect(await typesFor(watcher.id)).toEqual(['action.needed']);
});

test("an endpoint's deliveries page newest first from the one before which they start, reading about a page with any plan; another endpoint's delivery starts nothing", async () => {
  const account = (await createAccount(db, { name: `pages-${randomUUID()}` })).id;
  const hook = (await createWebhookEndpoint(db, ring, { accountId: account, url: 'https://hooks.example.com/pages', events: ['*'] })).endpoint;
  const other = (await createWebhookEndpoint(db, ring, { accountId: account, url: 'https://hooks.example.com/other', events: ['*'] })).endpoint;
  // 1,500 events delivered to both endpoints, the two endpoints' deliveries interleaved.
  await db.$client`
    with events as (
      insert into webhook_events (account_id, type, body) select ${account}, 'run.finished', '{}' from generate_series(1, 1500) returning id
    )
    insert into webhook_deliveries (endpoint_id, event_id, status)
    select p, e.id, 'succeeded' from events e, unnest(array[${hook.id}, ${other.id}]::uuid[]) p`;
  await db.$client`analyze webhook_deliveries`;
  const expected = (await db.$client<{ id: string }[]>`select id from webhook_deliveries where endpoint_id = ${hook.id} order by seq desc`).map((r) => r.id);
  const seen: string[] = [];
  let before: string | undefined;
  for (;;) {
    const page = await listWebhookDeliveries(db, account, hook.id, { limit: 200, ...(before === undefined ? {} : { before }) });
    seen.push(...page!.items.map((item) => item.id));
    if (page!.nextCursor === null) break;
    before = page!.nextCursor;
  }
  expect(seen).toEqual(expected);
  const middle = expected[700]!;
  for (const plan of ['custom', 'generic'] as const) {
    const { value, reads } = await planReads(databaseUrl, 'from webhook_deliveries d join', (handle) => listWebhookDeliveries(handle, account, hook.id, { limit: 50, before: middle }), plan);
    expect(value!.items.map((item) => item.id)).toEqual(expected.slice(701, 751));
    // The page, the row that tells there is more and the delivery it starts before; not the 700 newer ones.
    expect(reads.get('webhook_deliveries')?.rows ?? 0).toBeLessThanOrEqual(60);
  }
  // The other endpoint's delivery, or an unknown one, names no place in this endpoint's list.
  const theirs = (await db.$client<{ id: string }[]>`select id from webhook_deliveries where endpoint_id = ${other.id} order by seq desc limit 1 offset 700`)[0]!.id;
  expect((await listWebhookDeliveries(db, account, hook.id, { limit: 50, before: theirs }))!.items).toEqual([]);
  expect((await listWebhookDeliveries(db, account, hook.id, { limit: 50, before: randomUUID() }))!.items).toEqual([]);
});
