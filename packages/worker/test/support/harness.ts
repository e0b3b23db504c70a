import { randomUUID } from 'node:crypto';
import type { Cursor } from '@dirsync/providers';
import type { Db } from '@dirsync/db';
import { runSync, type SyncReport } from '../../src/pipeline/index.ts';
import type { SyncContext } from '../../src/pipeline/context.ts';
import { IssueLog, zeroCounts } from '../../src/pipeline/report.ts';
import type { DeletionApproval } from '../../src/pipeline/threshold.ts';
import type { ScriptedProvider } from './scripted-provider.ts';

/** Creates an account and an integration with the given thresholds; returns the integration id. */
export async function createIntegrationRow(
  db: Db,
  thresholds: { count?: number; percent?: number } = {},
): Promise<string> {
  const sql = db.$client;
  const [account] = await sql<{ id: string }[]>`insert into accounts (name) values (${randomUUID()}) returning id`;
  const [row] = await sql<{ id: string }[]>`
    insert into integrations (account_id, kind, name, settings, delete_threshold_count, delete_threshold_percent)
    values (${account!.id}, 'ldap', 'scripted', '{}', ${thresholds.count ?? 500}, ${thresholds.percent ?? 20})
    returning id`;
  return row!.id;
}

/**
 * The context of a new real run on `integrationId` for a stage driven by hand (sequential, on the
 * pool), with `overrides` on top.
 */
export function syncContext(db: Db, integrationId: string, overrides: Partial<SyncContext> = {}): SyncContext {
  return {
    sql: db.$client,
    pool: db.$client,
    integrationId,
    runId: randomUUID(),
    counts: zeroCounts(),
    issues: new IssueLog(100),
    parallelism: 1,
    fork: undefined,
    storedAtStart: true,
    assumeAbsent: false,
    ...overrides,
  };
}

/**
 * Drives the pipeline the way the processor does, without Redis: keeps the integration's cursor
 * (stored only by succeeded runs) and gives each run a fresh id.
 */
export class PipelineHarness {
  readonly db: Db;
  readonly provider: ScriptedProvider;
  readonly integrationId: string;
  cursor: Cursor | null = null;
  thresholds: { count: number; percent: number };
  batchSize = 2;

  constructor(db: Db, provider: ScriptedProvider, integrationId: string, thresholds = { count: 1000, percent: 100 }) {
    this.db = db;
    this.provider = provider;
    this.integrationId = integrationId;
    this.thresholds = thresholds;
  }

  async sync(
    mode: 'full' | 'delta',
    options: { dryRun?: boolean; approval?: DeletionApproval; signal?: AbortSignal; runId?: string } = {},
  ): Promise<SyncReport> {
    const report = await runSync({
      db: this.db,
      provider: this.provider,
      integration: {
        id: this.integrationId,
        cursor: this.cursor,
        deleteThresholdCount: this.thresholds.count,
        deleteThresholdPercent: this.thresholds.percent,
      },
      run: { id: options.runId ?? randomUUID(), modeRequested: mode, dryRun: options.dryRun ?? false },
      signal: options.signal ?? new AbortController().signal,
      approval: options.approval,
      batchSize: this.batchSize,
    });
    if (report.status === 'succeeded' && report.cursor !== undefined) this.cursor = report.cursor;
    return report;
  }

  /** Live objects by external id → attributes name (compact view for assertions). */
  async live(): Promise<string[]> {
    const rows = await this.db.$client<{ external_id: string }[]>`
      select external_id from directory_objects
      where integration_id = ${this.integrationId} and deleted_at is null order by external_id`;
    return rows.map((row) => row.external_id);
  }

  /** Soft-deleted objects. */
  async deleted(): Promise<string[]> {
    const rows = await this.db.$client<{ external_id: string }[]>`
      select external_id from directory_objects
      where integration_id = ${this.integrationId} and deleted_at is not null order by external_id`;
    return rows.map((row) => row.external_id);
  }

  /** Live edges as `group>member`. */
  async edges(): Promise<string[]> {
    const rows = await this.db.$client<{ edge: string }[]>`
      select group_external_id || '>' || member_external_id as edge from memberships
      where integration_id = ${this.integrationId} and deleted_at is null order by 1`;
    return rows.map((row) => row.edge);
  }

  /** Stored attributes of one object. */
  async attributes(externalId: string): Promise<unknown> {
    const [row] = await this.db.$client<{ attributes: unknown }[]>`
      select attributes from directory_objects where integration_id = ${this.integrationId} and external_id = ${externalId}`;
    return row?.attributes;
  }

  /** Everything stored for the integration, timestamps included: equal snapshots mean nothing was written. */
  async snapshot(): Promise<string> {
    const objects = await this.db.$client`
      select * from directory_objects where integration_id = ${this.integrationId} order by external_id`;
    const edges = await this.db.$client`
      select * from memberships where integration_id = ${this.integrationId} order by group_external_id, member_external_id`;
    return JSON.stringify({ objects, edges });
  }
}
