import type { Db } from './client.ts';
import { type ActionNeeded, listActionsNeeded } from './connectors.ts';

// The gauges of the scheduler / API process, read at scrape time. Times and ages are computed by
// PostgreSQL (its clock), so every replica scraping at once reports the same values.

/** One integration as the per-integration gauges see it. */
export interface IntegrationGaugeRow {
  id: string;
  account_id: string;
  kind: string;
  status: string;
  enabled: boolean;
  /** Unix time (seconds) of the last successful sync; null until one succeeds. */
  last_success: number | null;
  /** Seconds since the stored secret was set; null without a secret. */
  secret_age: number | null;
}

/** Every integration with the ages its gauges report. */
export async function readIntegrationGauges(db: Db): Promise<IntegrationGaugeRow[]> {
  return db.$client<IntegrationGaugeRow[]>`
    select i.id, i.account_id, i.kind, i.status, i.enabled,
      extract(epoch from i.last_success_at)::float8 as last_success,
      case when i.secret_ciphertext is null then null else extract(epoch from now() - coalesce(
        (select max(a.created_at) from audit_events a where a.integration_id = i.id and a.action = 'integration.password_updated'),
        i.created_at))::float8 end as secret_age
    from integrations i`;
}

/**
 * Runs queued and running now (both statuses always present, 0 without runs). The runs are
 * counted under a condition on their status alone, which the index of unfinished runs
 * (`sync_runs_active_idx`) answers: a join on the status would read every run kept.
 */
export async function countActiveRuns(db: Db): Promise<{ status: 'queued' | 'running'; n: number }[]> {
  return db.$client<{ status: 'queued' | 'running'; n: number }[]>`
    select s.status, coalesce(c.n, 0)::int as n
    from (values ('queued'), ('running')) as s(status)
      left join (select status, count(*) as n from sync_runs where status in ('queued', 'running') group by status) c on c.status = s.status`;
}

/** A connector and its current certificate's age and remaining validity (seconds). */
export interface ConnectorGaugeRow {
  name: string;
  rotation_cron: string;
  credential_age: number | null;
  expires_in: number | null;
}

/** Every connector with the ages of its current certificate (null without one). */
export async function readConnectorGauges(db: Db): Promise<ConnectorGaugeRow[]> {
  return db.$client<ConnectorGaugeRow[]>`
    select c.name, c.rotation_cron,
      extract(epoch from now() - coalesce(k.activated_at, k.created_at))::float8 as credential_age,
      extract(epoch from k.not_after - now())::float8 as expires_in
    from connectors c left join connector_credentials k on k.connector_id = c.id and k.status = 'current'`;
}

/** What PostgreSQL holds for an integration: live and soft-deleted objects by type, and live membership edges. */
export interface IntegrationHoldings {
  objects: { type: string; live: number; deleted: number }[];
  liveMemberships: number;
}

/** Counts {@link IntegrationHoldings} of one integration. */
export async function countIntegrationHoldings(db: Db, integrationId: string): Promise<IntegrationHoldings> {
  const objects = await db.$client<{ type: string; live: number; deleted: number }[]>`
    select type, count(*) filter (where deleted_at is null)::int as live, count(*) filter (where deleted_at is not null)::int as deleted
    from directory_objects where integration_id = ${integrationId} group by type order by type`;
  const [edges] = await db.$client<{ live: number }[]>`
    select count(*)::int as live from memberships where integration_id = ${integrationId} and deleted_at is null`;
  return { objects: [...objects], liveMemberships: edges?.live ?? 0 };
}

/** Actions needed by kind (see `listActionsNeeded`), every kind present (0 when none). */
export type ActionCounts = Record<ActionNeeded['kind'], number>;

/** Counts what `listActionsNeeded` lists, by kind: what alerts on rotations and consents read. */
export async function countActionsNeeded(db: Db, now: Date = new Date()): Promise<ActionCounts> {
  const counts: ActionCounts = { migrate_legacy_integration: 0, grant_consent: 0, rotation_failed: 0, certificate_expiring: 0, delete_old_app_registration: 0 };
  for (const action of await listActionsNeeded(db, now)) counts[action.kind]++;
  return counts;
}
