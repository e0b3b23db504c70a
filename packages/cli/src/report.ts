import { displayText, type Run } from '@dirsync/db';
import { duration, keyValues, table } from './format.ts';

/**
 * A run report as administrators read it: what ran, why, and what changed. Text that came from a
 * directory (errors, DNs, reasons) is printed without control characters and capped.
 */
export function describeRun(run: Run): string {
  const header = keyValues([
    ['run', run.id],
    ['integration', run.integrationId],
    ['status', run.status],
    ['mode', run.mode && run.mode !== run.modeRequested ? `${run.mode} (requested ${run.modeRequested})` : (run.mode ?? run.modeRequested)],
    ['trigger', run.trigger + (run.requestedBy ? ` by ${run.requestedBy}` : '')],
    ['dry run', run.dryRun ? 'yes (nothing written)' : 'no'],
    ['reason', run.reason ?? ''],
    ['worker', run.workerId ?? ''],
    ['queued', run.queuedAt],
    ['started', run.startedAt],
    ['finished', run.finishedAt],
    ['took', duration(run.durationMs)],
    ...(run.attempt > 0 ? ([['attempt', `${run.attempt} of ${run.maxAttempts ?? '?'}`]] as const) : []),
    ...(run.error ? ([['error', displayText(run.error, 1_000)]] as const) : []),
    ...(run.status === 'retrying' && run.lastError ? ([['last error', displayText(run.lastError, 1_000)]] as const) : []),
    ...(run.status === 'blocked'
      ? ([['blocked', `${run.wouldDelete} deletions exceed the threshold; \`dirsync runs approve ${run.id}\` allows them`]] as const)
      : []),
    ...(run.approvedAt ? ([['approved', `${run.approvedAt.toISOString()} by ${run.approvedBy ?? ''}`]] as const) : []),
  ]);
  const counts = table(
    ['fetched', 'created', 'updated', 'unchanged', 'deleted', 'restored', 'failed', 'would delete', 'members +', 'members -'],
    [[run.fetched, run.created, run.updated, run.unchanged, run.deleted, run.restored, run.failed, run.wouldDelete, run.membershipsAdded, run.membershipsRemoved]],
  );
  const issues = run.issues.length
    ? `\nissues (${run.issueCount}):\n${table(['object', 'reason'], run.issues.slice(0, 20).map((i) => [displayText(i.externalId ?? i.dn ?? ''), displayText(i.reason)]))}`
    : '';
  return `${header}\n\n${counts}${issues}`;
}
