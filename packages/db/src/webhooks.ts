import { randomBytes } from 'node:crypto';
import type postgres from 'postgres';
import { changeRangeOfRun } from './changes.ts';
import type { Db } from './client.ts';
import { webhookSecretAad } from './encrypted-columns.ts';
import { InvalidStateError, SecretDecryptError } from './errors.ts';
import { isUuid } from './ids.ts';
import type { ObjectSql } from './objects.ts';
import { decryptSecret, encryptSecret, type KeyRing } from './secrets.ts';

// Signed webhooks: endpoints, the event outbox and the deliveries the webhook workers drain.
// Events are written with the fact they report (same transaction where the caller has one),
// so an event is never lost between the fact and the queue: the queue only says "look now".

type RawSql = postgres.Sql | postgres.TransactionSql;

function raw(handle: ObjectSql): RawSql {
  return '$client' in handle ? handle.$client : handle;
}

/** An endpoint as stored, without its secret. */
export interface WebhookEndpointRow {
  readonly id: string;
  readonly accountId: string;
  readonly url: string;
  readonly events: readonly string[];
  readonly description: string;
  readonly enabled: boolean;
  readonly disabledReason: string | null;
  readonly failureStreak: number;
  readonly disabledAt: Date | null;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** A delivery as the API lists it. */
export interface WebhookDeliveryRow {
  readonly id: string;
  readonly endpointId: string;
  readonly eventId: string;
  readonly messageId: string;
  readonly eventType: string;
  readonly status: 'pending' | 'succeeded' | 'failed';
  readonly attempts: number;
  readonly lastStatusCode: number | null;
  readonly lastError: string | null;
  readonly nextAttemptAt: Date | null;
  readonly deliveredAt: Date | null;
  readonly createdAt: Date;
}

interface EndpointDbRow {
  id: string;
  account_id: string;
  url: string;
  events: string[];
  description: string;
  enabled: boolean;
  disabled_reason: string | null;
  failure_streak: number;
  disabled_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const endpointColumns = 'id, account_id, url, events, description, enabled, disabled_reason, failure_streak, disabled_at, created_at, updated_at';

// The pool may hand timestamps back as text (see client.ts): every one is made a Date here.
function dateOf(value: Date | string): Date {
  return value instanceof Date ? value : new Date(value);
}

function dateOrNull(value: Date | string | null): Date | null {
  return value === null ? null : dateOf(value);
}

function endpointOf(row: EndpointDbRow): WebhookEndpointRow {
  return {
    id: row.id,
    accountId: row.account_id,
    url: row.url,
    events: row.events,
    description: row.description,
    enabled: row.enabled,
    disabledReason: row.disabled_reason,
    failureStreak: row.failure_streak,
    disabledAt: dateOrNull(row.disabled_at),
    createdAt: dateOf(row.created_at),
    updatedAt: dateOf(row.updated_at),
  };
}

/** The `webhook-id` of an event's deliveries: the same for every attempt and redelivery. */
export function webhookMessageId(eventId: string): string {
  return `msg_${eventId.replaceAll('-', '')}`;
}

/**
 * A new signing secret: `whsec_` and the base64 of 32 random bytes (Standard Webhooks asks for
 * 24–64). Generated here, on the server, and shown to its owner once.
 */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** Input of {@link createWebhookEndpoint}. */
export interface NewWebhookEndpoint {
  readonly accountId: string;
  readonly url: string;
  readonly events: readonly string[];
  readonly description?: string | undefined;
}

/**
 * Endpoints one account may have: every event fans out to each (a delivery and a drain apiece,
 * on workers all accounts share), and the list is answered whole.
 */
export const maxWebhookEndpointsPerAccount = 50;

/**
 * Creates an endpoint with a fresh secret, sealed; returns both (the secret to show once).
 * Throws {@link InvalidStateError} when the account has {@link maxWebhookEndpointsPerAccount}.
 */
export async function createWebhookEndpoint(db: Db, ring: KeyRing, input: NewWebhookEndpoint): Promise<{ endpoint: WebhookEndpointRow; secret: string }> {
  const sql = db.$client;
  const secret = generateWebhookSecret();
  const endpoint = await sql.begin(async (tx) => {
    // The account row is locked so that concurrent additions count one after the other (the
    // count is a statement of its own: its snapshot is taken once the lock is held).
    await tx`select 1 from accounts where id = ${input.accountId} for update`;
    const [count] = await tx<{ n: number }[]>`select count(*)::int as n from webhook_endpoints where account_id = ${input.accountId}`;
    if ((count?.n ?? 0) >= maxWebhookEndpointsPerAccount) {
      throw new InvalidStateError(`an account has at most ${maxWebhookEndpointsPerAccount} webhook endpoints: remove one first`);
    }
    const [id] = await tx<{ id: string }[]>`select gen_random_uuid() as id`;
    const sealed = encryptSecret(ring, secret, webhookSecretAad(id!.id));
    const [row] = await tx<EndpointDbRow[]>`
      insert into webhook_endpoints (id, account_id, url, events, description, secret_ciphertext, secret_key_id)
      values (${id!.id}, ${input.accountId}, ${input.url}, ${[...input.events]}::text[], ${input.description ?? ''}, ${sealed.ciphertext}, ${sealed.keyId})
      returning ${tx.unsafe(endpointColumns)}`;
    return endpointOf(row!);
  });
  return { endpoint, secret };
}

/** The account's endpoints, oldest first. */
export async function listWebhookEndpoints(db: Db, accountId: string): Promise<WebhookEndpointRow[]> {
  const rows = await db.$client<EndpointDbRow[]>`
    select ${db.$client.unsafe(endpointColumns)} from webhook_endpoints where account_id = ${accountId} order by created_at, id`;
  return rows.map(endpointOf);
}

/** The endpoint `id` when it belongs to `accountId`, else undefined (another account's reads as absent). */
export async function getWebhookEndpoint(db: Db, accountId: string, id: string): Promise<WebhookEndpointRow | undefined> {
  if (!isUuid(id)) return undefined;
  const [row] = await db.$client<EndpointDbRow[]>`
    select ${db.$client.unsafe(endpointColumns)} from webhook_endpoints where id = ${id} and account_id = ${accountId}`;
  return row === undefined ? undefined : endpointOf(row);
}

/** Changes of {@link updateWebhookEndpoint}; `enabled: true` also resets the failure streak. */
export interface WebhookEndpointPatch {
  readonly url?: string | undefined;
  readonly events?: readonly string[] | undefined;
  readonly description?: string | undefined;
  readonly enabled?: boolean | undefined;
}

/** Updates an endpoint of `accountId`; undefined when it has none of that id. */
export async function updateWebhookEndpoint(db: Db, accountId: string, id: string, patch: WebhookEndpointPatch): Promise<WebhookEndpointRow | undefined> {
  if (!isUuid(id)) return undefined;
  const sql = db.$client;
  const enable = patch.enabled === true;
  const disable = patch.enabled === false;
  const rows = await sql.begin(async (tx) => {
    const updated = await tx<EndpointDbRow[]>`
    update webhook_endpoints set
      url = coalesce(${patch.url ?? null}, url),
      events = coalesce(${patch.events === undefined ? null : [...patch.events]}::text[], events),
      description = coalesce(${patch.description ?? null}, description),
      enabled = case when ${enable} then true when ${disable} then false else enabled end,
      failure_streak = case when ${enable} then 0 else failure_streak end,
      disabled_reason = case when ${enable} then null when ${disable} and enabled then 'disabled by an administrator' else disabled_reason end,
      disabled_at = case when ${enable} then null when ${disable} and enabled then now() else disabled_at end,
      updated_at = now()
    where id = ${id} and account_id = ${accountId}
    returning ${tx.unsafe(endpointColumns)}`;
    // What waited while it was disabled goes now, not at the end of a backoff of before.
    if (enable && updated.length > 0) await tx`update webhook_deliveries set next_attempt_at = now() where endpoint_id = ${id} and status = 'pending'`;
    return updated;
  });
  const row = rows[0];
  return row === undefined ? undefined : endpointOf(row);
}

/** Deletes an endpoint of `accountId` with its deliveries; false when it has none of that id. */
export async function deleteWebhookEndpoint(db: Db, accountId: string, id: string): Promise<boolean> {
  if (!isUuid(id)) return false;
  const rows = await db.$client`delete from webhook_endpoints where id = ${id} and account_id = ${accountId} returning id`;
  return rows.length > 0;
}

/** Replaces an endpoint's secret with a fresh one; returns it (to show once), or undefined when not the account's. */
export async function rotateWebhookSecret(db: Db, ring: KeyRing, accountId: string, id: string): Promise<string | undefined> {
  if (!isUuid(id)) return undefined;
  const secret = generateWebhookSecret();
  const sealed = encryptSecret(ring, secret, webhookSecretAad(id));
  const rows = await db.$client`
    update webhook_endpoints set secret_ciphertext = ${sealed.ciphertext}, secret_key_id = ${sealed.keyId}, updated_at = now()
    where id = ${id} and account_id = ${accountId} returning id`;
  return rows.length === 0 ? undefined : secret;
}

interface DeliveryDbRow {
  id: string;
  endpoint_id: string;
  event_id: string;
  type: string;
  status: 'pending' | 'succeeded' | 'failed';
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
  next_attempt_at: Date | null;
  delivered_at: Date | null;
  created_at: Date;
  seq: string;
}

function deliveryOf(row: DeliveryDbRow): WebhookDeliveryRow {
  return {
    id: row.id,
    endpointId: row.endpoint_id,
    eventId: row.event_id,
    messageId: webhookMessageId(row.event_id),
    eventType: row.type,
    status: row.status,
    attempts: row.attempts,
    lastStatusCode: row.last_status_code,
    lastError: row.last_error,
    nextAttemptAt: row.status === 'pending' ? dateOrNull(row.next_attempt_at) : null,
    deliveredAt: dateOrNull(row.delivered_at),
    createdAt: dateOf(row.created_at),
  };
}

/**
 * Deliveries of an endpoint of `accountId`, newest first, `limit` at most, before the delivery
 * `before` when given (paging). Undefined when the endpoint is not the account's.
 */
export async function listWebhookDeliveries(
  db: Db,
  accountId: string,
  endpointId: string,
  page: { readonly limit: number; readonly before?: string | undefined },
): Promise<{ items: WebhookDeliveryRow[]; nextCursor: string | null } | undefined> {
  if (!(await getWebhookEndpoint(db, accountId, endpointId))) return undefined;
  const sql = db.$client;
  const limit = Math.max(1, Math.min(200, Math.floor(page.limit)));
  const before = page.before !== undefined && isUuid(page.before) ? page.before : null;
  // The page starts at one bound of the index scan whatever the plan: a generic plan only filters
  // by a condition that a null switches off, and read every newer delivery first. A delivery that
  // is not this endpoint's gives no bound, so no row.
  const rows = await sql<DeliveryDbRow[]>`
    select d.id, d.endpoint_id, d.event_id, e.type, d.status, d.attempts, d.last_status_code, d.last_error,
      d.next_attempt_at, d.delivered_at, d.created_at, d.seq::text as seq
    from webhook_deliveries d join webhook_events e on e.id = d.event_id
    where d.endpoint_id = ${endpointId}
      and d.seq < (case when ${before}::uuid is null then 9223372036854775807
        else (select seq from webhook_deliveries where id = ${before}::uuid and endpoint_id = ${endpointId}) end)
    order by d.seq desc
    limit ${limit + 1}`;
  const items = rows.slice(0, limit).map(deliveryOf);
  return { items, nextCursor: rows.length > limit ? (items.at(-1)?.id ?? null) : null };
}

/** One delivery of an endpoint of `accountId`, or undefined. */
export async function getWebhookDelivery(db: Db, accountId: string, endpointId: string, deliveryId: string): Promise<WebhookDeliveryRow | undefined> {
  if (!isUuid(endpointId) || !isUuid(deliveryId)) return undefined;
  const [row] = await db.$client<DeliveryDbRow[]>`
    select d.id, d.endpoint_id, d.event_id, e.type, d.status, d.attempts, d.last_status_code, d.last_error,
      d.next_attempt_at, d.delivered_at, d.created_at, d.seq::text as seq
    from webhook_deliveries d
      join webhook_events e on e.id = d.event_id
      join webhook_endpoints p on p.id = d.endpoint_id
    where d.id = ${deliveryId} and d.endpoint_id = ${endpointId} and p.account_id = ${accountId}`;
  return row === undefined ? undefined : deliveryOf(row);
}

/**
 * Puts a delivery back in its endpoint's queue (manual redelivery): pending again, due now,
 * with a fresh count of attempts. Its place is its original one: an older delivery still
 * pending goes first. Undefined when the delivery is not the account's endpoint's.
 */
export async function redeliverWebhookDelivery(db: Db, accountId: string, endpointId: string, deliveryId: string): Promise<WebhookDeliveryRow | undefined> {
  if (!isUuid(endpointId) || !isUuid(deliveryId)) return undefined;
  const rows = await db.$client`
    update webhook_deliveries d set status = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now()
    from webhook_endpoints p
    where d.id = ${deliveryId} and d.endpoint_id = ${endpointId} and p.id = d.endpoint_id and p.account_id = ${accountId}
    returning d.id`;
  if (rows.length === 0) return undefined;
  return getWebhookDelivery(db, accountId, endpointId, deliveryId);
}

/** An event to record (see {@link recordWebhookEvent}). */
export interface NewWebhookEvent {
  readonly accountId: string;
  readonly type: string;
  readonly data: Record<string, unknown>;
  /** Only this endpoint of the account (test events); default every subscribed, enabled endpoint. */
  readonly endpointId?: string | undefined;
}

/** What {@link recordWebhookEvent} wrote. */
export interface RecordedWebhookEvent {
  readonly eventId: string | null;
  /** Endpoints given a delivery: the ones to drain. */
  readonly endpointIds: readonly string[];
}

/**
 * Records an event and one delivery for each of the account's enabled endpoints subscribed to its
 * type (or `*`). Pass the transaction of the fact it reports, so both commit or neither does.
 * Nothing is written when no endpoint wants it.
 */
export async function recordWebhookEvent(handle: ObjectSql, event: NewWebhookEvent): Promise<RecordedWebhookEvent> {
  const sql = raw(handle);
  const only = event.endpointId ?? null;
  const endpoints = await sql<{ id: string }[]>`
    select id from webhook_endpoints
    where account_id = ${event.accountId}
      and (${only}::uuid is null or id = ${only}::uuid)
      and (${only}::uuid is not null or (enabled and (${event.type} = any(events) or '*' = any(events))))
    order by id`;
  if (endpoints.length === 0) return { eventId: null, endpointIds: [] };
  const body = JSON.stringify({ type: event.type, timestamp: new Date().toISOString(), data: event.data });
  const [row] = await sql<{ id: string }[]>`
    insert into webhook_events (account_id, type, body) values (${event.accountId}, ${event.type}, ${body}) returning id`;
  const eventId = row!.id;
  const ids = endpoints.map((e) => e.id);
  await sql`
    insert into webhook_deliveries (endpoint_id, event_id)
    select endpoint_id, ${eventId}::uuid from unnest(${ids}::uuid[]) with ordinality as t(endpoint_id, n) order by n`;
  return { eventId, endpointIds: ids };
}

/**
 * Records a connector-level event (consent, rotation) for every account concerned: the accounts
 * whose Entra ID integrations use the connector (and the tenant, when given), and `accountIds`.
 */
export async function recordConnectorWebhookEvent(
  handle: ObjectSql,
  event: { readonly connectorId: string; readonly tenantId?: string | undefined; readonly accountIds?: readonly string[] | undefined; readonly type: string; readonly data: Record<string, unknown> },
): Promise<RecordedWebhookEvent[]> {
  const sql = raw(handle);
  const tenant = event.tenantId ?? null;
  const rows = await sql<{ account_id: string }[]>`
    select distinct account_id from (
      select account_id from integrations
      where kind = 'entra_id' and settings->>'connectorId' = ${event.connectorId}
        and (${tenant}::text is null or settings->>'tenantId' = ${tenant}::text)
      union select unnest(${[...(event.accountIds ?? [])]}::uuid[])
    ) a order by account_id`;
  const recorded: RecordedWebhookEvent[] = [];
  for (const row of rows) recorded.push(await recordWebhookEvent(sql, { accountId: row.account_id, type: event.type, data: event.data }));
  return recorded;
}

/** The end of a run, as {@link recordRunWebhookEvents} reports it. */
export interface RunEnd {
  readonly runId: string;
  readonly integrationId: string;
  readonly status: string;
  readonly mode: string | null;
  readonly error: string | null;
}

/**
 * Inside the transaction that ends a run: its events. `run.finished` (and `objects.changed` with
 * the feed's cursor range, when the run changed anything), `run.failed`, or `run.blocked` with
 * `action.needed`. Dry runs report nothing.
 */
export async function recordRunWebhookEvents(handle: ObjectSql, end: RunEnd): Promise<RecordedWebhookEvent[]> {
  const sql = raw(handle);
  const [row] = await sql<{ account_id: string; dry_run: boolean }[]>`
    select i.account_id, r.dry_run from sync_runs r join integrations i on i.id = r.integration_id where r.id = ${end.runId}`;
  if (!row || row.dry_run) return [];
  const base = { integrationId: end.integrationId, runId: end.runId, status: end.status, mode: end.mode, error: end.error };
  const record = (type: string, data: Record<string, unknown>) => recordWebhookEvent(sql, { accountId: row.account_id, type, data });
  const recorded: RecordedWebhookEvent[] = [];
  if (end.status === 'succeeded') {
    recorded.push(await record('run.finished', base));
    const range = await changeRangeOfRun(sql, end.runId);
    // The feed's cursor before the first change: a consumer reads `after=cursorFrom`.
    if (range !== null) {
      recorded.push(await record('objects.changed', { integrationId: end.integrationId, runId: end.runId, cursorFrom: (BigInt(range.cursorFrom) - 1n).toString(), cursorTo: range.cursorTo, count: range.count }));
    }
  } else if (end.status === 'blocked') {
    recorded.push(await record('run.blocked', base));
    recorded.push(
      await record('action.needed', {
        action: 'blocked_run',
        integrationId: end.integrationId,
        runId: end.runId,
        detail: 'the run would delete more objects than the threshold allows: approve it or raise the threshold',
      }),
    );
  } else if (end.status === 'failed') {
    recorded.push(await record('run.failed', base));
  }
  return recorded;
}

/**
 * Consent events of one account's tenant: `consent.revoked` or `consent.needed`, with
 * `action.needed` when the account has something to do (grant consent again).
 */
export async function recordConsentWebhookEvents(
  handle: ObjectSql,
  event: {
    readonly accountId: string;
    readonly connectorId: string;
    readonly tenantId: string;
    readonly type: 'consent.revoked' | 'consent.needed';
    readonly detail: string | null;
    readonly actionNeeded: boolean;
    readonly integrationId?: string | undefined;
  },
): Promise<void> {
  const data = { connectorId: event.connectorId, tenantId: event.tenantId, detail: event.detail, ...(event.integrationId === undefined ? {} : { integrationId: event.integrationId }) };
  await recordWebhookEvent(handle, { accountId: event.accountId, type: event.type, data });
  if (event.actionNeeded) {
    await recordWebhookEvent(handle, {
      accountId: event.accountId,
      type: 'action.needed',
      data: { action: 'grant_consent', ...data, detail: `tenant ${event.tenantId} has to grant consent to the connector again (POST /v1/connectors/${event.connectorId}/consent-url)` },
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Delivery: the webhook workers drain one endpoint at a time under a lease.

/** An endpoint leased for draining, with its secret opened. */
export interface LeasedWebhookEndpoint {
  readonly id: string;
  readonly accountId: string;
  readonly url: string;
  readonly enabled: boolean;
  readonly secret: string;
}

/**
 * Takes (or renews, with the same token) the lease of an endpoint's queue for `leaseMs`.
 * Undefined when another drain holds it, or the endpoint is gone. Only the holder of the lease
 * delivers the endpoint's events, which is what keeps them in order.
 */
export async function leaseWebhookEndpoint(db: Db, ring: KeyRing, endpointId: string, token: string, leaseMs: number): Promise<LeasedWebhookEndpoint | undefined> {
  if (!isUuid(endpointId)) return undefined;
  const [row] = await db.$client<{ id: string; account_id: string; url: string; enabled: boolean; secret_ciphertext: string; secret_key_id: string }[]>`
    update webhook_endpoints set drain_lease = ${token}, drain_until = now() + make_interval(secs => ${leaseMs / 1000})
    where id = ${endpointId} and (drain_lease is null or drain_lease = ${token} or drain_until < now())
    returning id, account_id, url, enabled, secret_ciphertext, secret_key_id`;
  if (!row) return undefined;
  let secret: string;
  try {
    secret = decryptSecret(ring, { ciphertext: row.secret_ciphertext, keyId: row.secret_key_id }, webhookSecretAad(row.id));
  } catch (error) {
    if (error instanceof SecretDecryptError) throw new SecretDecryptError(error.reason, `webhook endpoint ${row.id}: ${error.message}`);
    throw error;
  }
  return { id: row.id, accountId: row.account_id, url: row.url, enabled: row.enabled, secret };
}

/** Gives up the lease (only its holder can). */
export async function releaseWebhookEndpoint(db: Db, endpointId: string, token: string): Promise<void> {
  await db.$client`update webhook_endpoints set drain_lease = null, drain_until = null where id = ${endpointId} and drain_lease = ${token}`;
}

/** The oldest pending delivery of an endpoint: the only one that may be attempted. */
export interface HeadWebhookDelivery {
  readonly id: string;
  readonly eventId: string;
  readonly messageId: string;
  readonly type: string;
  readonly body: string;
  readonly attempts: number;
  /** Milliseconds until it is due (0 when due now). */
  readonly dueInMs: number;
}

/** The endpoint's oldest pending delivery, or undefined when none is pending. */
export async function headWebhookDelivery(db: Db, endpointId: string): Promise<HeadWebhookDelivery | undefined> {
  const [row] = await db.$client<{ id: string; event_id: string; type: string; body: string; attempts: number; due_in_ms: number }[]>`
    select d.id, d.event_id, e.type, e.body, d.attempts,
      greatest(0, ceil(extract(epoch from (coalesce(d.next_attempt_at, now()) - now())) * 1000))::float8 as due_in_ms
    from webhook_deliveries d join webhook_events e on e.id = d.event_id
    where d.endpoint_id = ${endpointId} and d.status = 'pending'
    order by d.seq
    limit 1`;
  if (!row) return undefined;
  return { id: row.id, eventId: row.event_id, messageId: webhookMessageId(row.event_id), type: row.type, body: row.body, attempts: row.attempts, dueInMs: Number(row.due_in_ms) };
}

/** The outcome of one attempt (see {@link recordWebhookAttempt}). */
export interface WebhookAttemptOutcome {
  readonly endpointId: string;
  readonly deliveryId: string;
  /** The drain's lease token: an attempt of a drain that lost its lease changes nothing. */
  readonly token: string;
  readonly ok: boolean;
  readonly statusCode: number | null;
  /** One line, no secret. */
  readonly error: string | null;
  /** When to try again after a failure; null gives the delivery up (`failed`). */
  readonly retryInMs: number | null;
  /** Disable the endpoint now (410 Gone). */
  readonly gone: boolean;
  /**
   * The URL was refused before anything was sent (the destination policy, or a scheme this
   * installation no longer allows): the endpoint is disabled now with `error` as its reason, and
   * the delivery waits, pending and attempted again only once the endpoint is enabled.
   */
  readonly refused?: boolean | undefined;
  /** Failed attempts in a row that disable the endpoint. */
  readonly disableAfter: number;
}

/** What {@link recordWebhookAttempt} did to the endpoint. */
export interface WebhookAttemptResult {
  readonly recorded: boolean;
  readonly disabled: boolean;
  readonly failureStreak: number;
  /** Endpoints given an `action.needed` delivery because this one was disabled. */
  readonly notify: readonly string[];
}

/**
 * Records an attempt in one transaction: the delivery's state, the endpoint's failure streak,
 * and when the streak reaches `disableAfter` (or the receiver answered 410 Gone, or the URL was
 * refused) the endpoint disabled with an `action.needed` event to the account's other endpoints.
 */
export async function recordWebhookAttempt(db: Db, outcome: WebhookAttemptOutcome): Promise<WebhookAttemptResult> {
  const error = outcome.error === null ? null : outcome.error.slice(0, 500);
  return db.$client.begin(async (tx) => {
    const [endpoint] = await tx<{ account_id: string; url: string; failure_streak: number; enabled: boolean }[]>`
      select account_id, url, failure_streak, enabled from webhook_endpoints
      where id = ${outcome.endpointId} and drain_lease = ${outcome.token} for update`;
    if (!endpoint) return { recorded: false, disabled: false, failureStreak: 0, notify: [] };
    if (outcome.ok) {
      await tx`
        update webhook_deliveries set status = 'succeeded', attempts = attempts + 1, last_status_code = ${outcome.statusCode},
          last_error = null, delivered_at = now(), next_attempt_at = null, updated_at = now()
        where id = ${outcome.deliveryId}`;
      await tx`update webhook_endpoints set failure_streak = 0 where id = ${outcome.endpointId}`;
      return { recorded: true, disabled: false, failureStreak: 0, notify: [] };
    }
    const refused = outcome.refused === true;
    // A refused delivery was never the receiver's to fail: it keeps its place, not given up
    // whatever its attempts, with no time of its own (due as soon as the endpoint is enabled).
    const retry = refused ? null : outcome.retryInMs;
    await tx`
      update webhook_deliveries set attempts = attempts + 1, last_status_code = ${outcome.statusCode}, last_error = ${error},
        status = ${retry === null && !refused ? 'failed' : 'pending'},
        next_attempt_at = ${retry === null ? null : tx`now() + make_interval(secs => ${retry / 1000})`},
        updated_at = now()
      where id = ${outcome.deliveryId}`;
    const streak = endpoint.failure_streak + 1;
    const disable = endpoint.enabled && (outcome.gone || refused || streak >= outcome.disableAfter);
    const reason = outcome.gone
      ? 'the receiver answered 410 Gone'
      : refused
        ? `refused before anything was sent, not retried: ${error ?? 'the URL is not allowed'}`
        : `${streak} deliveries failed in a row (last: ${error ?? 'no answer'})`;
    await tx`
      update webhook_endpoints set failure_streak = ${streak},
        enabled = case when ${disable} then false else enabled end,
        disabled_reason = case when ${disable} then ${reason} else disabled_reason end,
        disabled_at = case when ${disable} then now() else disabled_at end,
        updated_at = case when ${disable} then now() else updated_at end
      where id = ${outcome.endpointId}`;
    let notify: readonly string[] = [];
    if (disable) {
      const recorded = await recordWebhookEvent(tx, {
        accountId: endpoint.account_id,
        type: 'action.needed',
        data: { action: 'webhook_disabled', webhookId: outcome.endpointId, url: endpoint.url, detail: reason },
      });
      notify = recorded.endpointIds;
    }
    return { recorded: true, disabled: disable, failureStreak: streak, notify };
  });
}

/**
 * Enabled endpoints with a pending delivery due now and no live drain: what a sweep hands to
 * the queue when a drain job was lost (a crash between a commit and its enqueue).
 */
export async function listDueWebhookEndpoints(db: Db, limit = 500): Promise<string[]> {
  const rows = await db.$client<{ id: string }[]>`
    select p.id from webhook_endpoints p
    where p.enabled and (p.drain_lease is null or p.drain_until < now())
      and exists (
        select 1 from webhook_deliveries d
        where d.endpoint_id = p.id and d.status = 'pending' and coalesce(d.next_attempt_at, now()) <= now()
      )
    order by p.id
    limit ${limit}`;
  return rows.map((row) => row.id);
}

/** Disabled endpoints of an account (for its actions list). */
export async function listDisabledWebhookEndpoints(db: Db, accountId: string): Promise<WebhookEndpointRow[]> {
  return (await listWebhookEndpoints(db, accountId)).filter((endpoint) => !endpoint.enabled);
}

/** Default days a finished webhook delivery is kept (`DIRSYNC_WEBHOOK_RETENTION_DAYS`). */
export const defaultWebhookRetentionDays = 30;

/**
 * Deletes one bounded batch of finished deliveries (succeeded or given up) older than `days`,
 * then one batch of events no delivery refers to any more. Pending deliveries are never pruned.
 * Returns the rows deleted; fewer than `batchSize` of each means nothing more is due now.
 */
export async function pruneWebhookDeliveries(db: Db, retention: { readonly days: number; readonly batchSize?: number | undefined }): Promise<{ deliveries: number; events: number }> {
  const batchSize = retention.batchSize ?? 1000;
  if (!Number.isFinite(retention.days) || retention.days < 0) throw new RangeError('retention days must be 0 or more');
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 100_000) throw new RangeError('retention batch size must be 1–100000');
  if (retention.days === 0) return { deliveries: 0, events: 0 };
  const cutoff = Math.round(retention.days * 86_400);
  const sql = db.$client;
  const deliveries = await sql`
    delete from webhook_deliveries where id in (
      select id from webhook_deliveries
      where created_at < now() - make_interval(secs => ${cutoff}) and status <> 'pending'
      order by created_at limit ${batchSize})
    returning id`;
  const events = await sql`
    delete from webhook_events where id in (
      select e.id from webhook_events e
      where e.created_at < now() - make_interval(secs => ${cutoff})
        and not exists (select 1 from webhook_deliveries d where d.event_id = e.id)
      order by e.created_at limit ${batchSize})
    returning id`;
  return { deliveries: deliveries.length, events: events.length };
}
