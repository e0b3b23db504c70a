import type { Integration, RunRow } from '@dirsync/db';

const iso = (value: Date | null): string | null => (value === null ? null : value.toISOString());

/** An integration as the API answers it (the response schema drops anything else). */
export function presentIntegration(integration: Integration) {
  return {
    id: integration.id,
    accountId: integration.accountId,
    kind: integration.kind,
    name: integration.name,
    description: integration.description,
    enabled: integration.enabled,
    settings: integration.settings,
    hasSecret: integration.hasSecret,
    deltaCron: integration.deltaCron,
    fullCron: integration.fullCron,
    deleteThresholdCount: integration.deleteThresholdCount,
    deleteThresholdPercent: integration.deleteThresholdPercent,
    status: integration.status,
    lastRunId: integration.lastRunId,
    lastSuccessRunId: integration.lastSuccessRunId,
    lastSuccessAt: iso(integration.lastSuccessAt),
    createdAt: integration.createdAt.toISOString(),
    updatedAt: integration.updatedAt.toISOString(),
  };
}

/** A run as the API answers it, counts grouped. */
export function presentRun(run: RunRow) {
  return {
    id: run.id,
    integrationId: run.integrationId,
    jobId: run.jobId,
    modeRequested: run.modeRequested,
    mode: run.mode,
    trigger: run.trigger,
    reason: run.reason,
    dryRun: run.dryRun,
    status: run.status,
    requestedBy: run.requestedBy,
    counts: {
      fetched: run.fetched,
      created: run.created,
      updated: run.updated,
      unchanged: run.unchanged,
      deleted: run.deleted,
      restored: run.restored,
      failed: run.failed,
      membershipsAdded: run.membershipsAdded,
      membershipsRemoved: run.membershipsRemoved,
      wouldDelete: run.wouldDelete,
    },
    issueCount: run.issueCount,
    workerId: run.workerId,
    error: run.error,
    approvedAt: run.approvedAt,
    approvedBy: run.approvedBy,
    queuedAt: run.queuedAt,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    durationMs: run.durationMs,
    attempt: run.attempt,
    maxAttempts: run.maxAttempts,
    lastError: run.lastError,
  };
}
