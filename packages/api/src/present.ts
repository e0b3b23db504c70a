import { type RunCounts, runCountsSchema } from '@dirsync/contracts';
import type { Connector, ConnectorCredential, Integration, RunRow } from '@dirsync/db';
import { DEFAULT_JITTER_MAX_MS, jitterOffsetMs, nextSlotAfter } from '@dirsync/jobs';

const iso = (value: Date | null): string | null => (value === null ? null : value.toISOString());

/** A run's counts, grouped (the row's other columns left out). */
function countsOf(run: RunRow): RunCounts {
  return runCountsSchema.parse(run);
}

/** The summary of an integration's latest run that its listing carries. */
export function presentLastRun(run: RunRow) {
  return {
    id: run.id,
    status: run.status,
    mode: run.mode ?? run.modeRequested,
    dryRun: run.dryRun,
    counts: countsOf(run),
    queuedAt: run.queuedAt,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    durationMs: run.durationMs,
  };
}

/**
 * When the scheduler next syncs each mode after `now`: the next cron slot plus the integration's
 * stable jitter (`jitterOffsetMs` with the scheduler's cap), as the scheduler computes due times;
 * none for a disabled integration, which the scheduler skips. A cron the jobs package cannot read
 * (stored before a stricter check) shows as no next sync rather than failing the whole listing.
 */
export function nextSyncsOf(
  integration: Pick<Integration, 'id' | 'enabled' | 'deltaCron' | 'fullCron'>,
  now: Date,
  jitterMaxMs: number = DEFAULT_JITTER_MAX_MS,
): { delta: string | null; full: string | null } {
  if (!integration.enabled) return { delta: null, full: null };
  let offset: number;
  try {
    offset = jitterOffsetMs(integration.id, integration, jitterMaxMs);
  } catch {
    return { delta: null, full: null };
  }
  const next = (cron: string): string | null => {
    try {
      return new Date(nextSlotAfter(cron, new Date(now.getTime() - offset)).getTime() + offset).toISOString();
    } catch {
      return null;
    }
  };
  return { delta: next(integration.deltaCron), full: next(integration.fullCron) };
}

/**
 * An integration as the API answers it (the response schema drops anything else), with its
 * latest run (`lastRun`, from one query for a whole list) and its next scheduled syncs.
 */
export function presentIntegration(integration: Integration, lastRun: RunRow | undefined, now: Date = new Date(), jitterMaxMs?: number) {
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
    lastRun: lastRun === undefined ? null : presentLastRun(lastRun),
    nextSyncs: nextSyncsOf(integration, now, jitterMaxMs),
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
    counts: countsOf(run),
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

/** The next slot of the connector's rotation cron (UTC, as the rotation scheduler reads it); null for a cron it cannot read. */
function nextRotationOf(connector: Pick<Connector, 'rotationCron'>, now: Date): string | null {
  try {
    return nextSlotAfter(connector.rotationCron, now).toISOString();
  } catch {
    return null;
  }
}

/**
 * A connector's platform-wide facts and certificate history, as the API and `dirsync connectors
 * --json` show them. Built field by field: the connector row also holds the TLS CA and lease
 * bookkeeping, and the credential rows their certificates; none of that belongs in an answer.
 * An account's answer adds its own tenants.
 */
export function presentConnectorFacts(connector: Connector, certificates: readonly ConnectorCredential[], now: Date) {
  return {
    id: connector.id,
    name: connector.name,
    description: connector.description,
    clientId: connector.clientId,
    redirectUri: connector.redirectUri,
    cloud: connector.cloud,
    authorityHost: connector.authorityHost,
    graphBaseUrl: connector.graphBaseUrl,
    permissions: connector.permissions,
    rotationCron: connector.rotationCron,
    certificateValidityDays: connector.certificateValidityDays,
    lastRotation: { at: iso(connector.lastRotationAt), status: connector.lastRotationStatus, error: connector.lastRotationError },
    nextRotationAt: nextRotationOf(connector, now),
    rotationFailures: connector.rotationFailures,
    currentThumbprint: certificates.find((c) => c.status === 'current')?.thumbprint ?? null,
    certificates: certificates.map((c) => ({
      id: c.id,
      status: c.status,
      thumbprint: c.thumbprint,
      thumbprintSha256: c.thumbprintSha256,
      notBefore: c.notBefore.toISOString(),
      notAfter: c.notAfter.toISOString(),
      activatedAt: iso(c.activatedAt),
      retiredAt: iso(c.retiredAt),
      removedAt: iso(c.removedAt),
    })),
  };
}
