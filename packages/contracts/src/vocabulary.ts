import { z } from 'zod';

/** Directory kinds dirsync can sync. */
export const integrationKinds = ['ldap', 'active_directory', 'domino', 'entra_id'] as const;
/** A directory kind. */
export type IntegrationKind = (typeof integrationKinds)[number];
/** Zod schema of {@link IntegrationKind}. */
export const integrationKindSchema = z.enum(integrationKinds);

/** How much of a directory a run reads: everything, or what changed since the last cursor. */
export const syncModes = ['full', 'delta'] as const;
/** A sync mode. */
export type SyncMode = (typeof syncModes)[number];
/** Zod schema of {@link SyncMode}. */
export const syncModeSchema = z.enum(syncModes);

/** What asked for a run. */
export const syncTriggers = ['schedule', 'manual', 'api', 'password_update', 'recovery'] as const;
/** A sync trigger. */
export type SyncTrigger = (typeof syncTriggers)[number];
/** Zod schema of {@link SyncTrigger}. */
export const syncTriggerSchema = z.enum(syncTriggers);

/**
 * Lifecycle of a run report: `queued` → `running` → (`retrying` → `running`)* → one final status
 * (`succeeded`, `failed`, `blocked` by the deletion threshold, `dry_run`). A failed attempt that
 * will be tried again reads `retrying`, never `failed`.
 */
export const runStatuses = ['queued', 'running', 'retrying', 'succeeded', 'failed', 'blocked', 'dry_run'] as const;
/** Status of a run. */
export type RunStatus = (typeof runStatuses)[number];
/** Zod schema of {@link RunStatus}. */
export const runStatusSchema = z.enum(runStatuses);
/** Run statuses nothing changes any more. */
export const finalRunStatuses = ['succeeded', 'failed', 'blocked', 'dry_run'] as const satisfies readonly RunStatus[];
/** A status a run ends in. */
export type FinalRunStatus = (typeof finalRunStatuses)[number];

/** Lifecycle of an Entra ID connector certificate. */
export const credentialStatuses = ['pending', 'current', 'previous', 'retired', 'removed', 'abandoned'] as const;
/** Status of a connector certificate. */
export type CredentialStatus = (typeof credentialStatuses)[number];

/** State of a tenant's admin consent for a connector. */
export const consentStatuses = ['pending', 'granted', 'denied', 'revoked'] as const;
/** Status of a tenant's admin consent. */
export type ConsentStatus = (typeof consentStatuses)[number];

// Counts are counters: zero until something happened, so a report missing a count (an older row,
// a run that ended early) reads 0 rather than being refused.
const count = z.number().int().min(0).default(0);

/** Counts of a run report: what a run read and what it changed. */
export const runCountsSchema = z.object({
  fetched: count,
  created: count,
  updated: count,
  unchanged: count,
  deleted: count,
  restored: count,
  failed: count,
  membershipsAdded: count,
  membershipsRemoved: count,
  wouldDelete: count.describe('objects a dry run, or a run blocked by the deletion threshold, would have deleted'),
});
/** Counts of a run report. */
export type RunCounts = z.output<typeof runCountsSchema>;

/** Counts of a run that has not read anything yet. */
export function emptyRunCounts(): RunCounts {
  return runCountsSchema.parse({});
}
