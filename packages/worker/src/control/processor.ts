import type { ConnectionReport as ConnectionReportResult, ConsentVerificationResult, PreviewResult } from '@dirsync/contracts';

type ConnectionCheck = ConnectionReportResult['checks'][number];
import { type Job, UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import { type Db, deleteSecretCandidate, getIntegration, type Integration, type KeyRing, withIntegrationSecret, withSecretCandidate } from '@dirsync/db';
import {
  CONTROL_JOB_NAMES,
  parseCheckSecretJob,
  parsePreviewJob,
  parseTestConnectionJob,
  parseVerifyConsentJob,
} from '@dirsync/jobs';
import { type DestinationPolicy, previewProvider, type Provider, ProviderError } from '@dirsync/providers';
import { verifyTenantConsent } from '../entra/consent-verification.ts';
import { classifyFailure } from '../failure.ts';
import type { ProviderFactory } from '../processor.ts';

/** Dependencies of {@link createControlProcessor}. */
export interface ControlProcessorOptions {
  readonly db: Db;
  readonly keyRing: KeyRing;
  readonly logger: Logger;
  readonly createProvider: ProviderFactory;
  /** Longest a Test Connection may take on this side (default 60 s). */
  readonly testTimeoutMs?: number | undefined;
  /** Where the consent verification's token request may connect (default: the strict policy). */
  readonly destinations?: DestinationPolicy | undefined;
  /** How long a consent verification asks again for tokens lacking just-granted permissions (default 120 s). */
  readonly consentPropagationWaitMs?: number | undefined;
}

/** A provider error as a failed checklist line: the report is the answer, not a job failure. */
function failedCheck(name: string, error: ProviderError): ConnectionReportResult {
  return { ok: false, checks: [{ name, ok: false, detail: classifyFailure(error).message }] };
}

/** Entries Test Connection maps to show the attribute mapping's output. */
const testSamples = 3;

/**
 * A passed Test Connection's report with a few entries mapped, showing what a sync will store,
 * and a `mapping` warning when some of them cannot be mapped or none can be read: what every
 * Test Connection adds, the workers' (API, console) and the command line's alike.
 */
export async function withMappedSamples(provider: Provider, checks: readonly ConnectionCheck[], signal: AbortSignal): Promise<ConnectionReportResult> {
  const all = checks.map((check) => ({ ...check }));
  try {
    const preview = await previewProvider(provider, testSamples, signal);
    if (preview.problems.length > 0) {
      const first = preview.problems[0];
      all.push({ name: 'mapping', ok: true, warning: true, detail: `${preview.problems.length} of the first entries could not be mapped: ${first?.reason ?? ''}` });
    }
    return { ok: true, checks: all, samples: preview.samples };
  } catch (error) {
    if (!(error instanceof ProviderError)) throw error;
    all.push({ name: 'mapping', ok: true, warning: true, detail: `no sample entries could be read to show the mapping: ${classifyFailure(error).message}` });
    return { ok: true, checks: all };
  }
}

async function testWith(
  options: ControlProcessorOptions,
  integration: Integration,
  secret: string | undefined,
  withSamples = false,
): Promise<ConnectionReportResult> {
  let provider;
  try {
    provider = await options.createProvider(integration.kind, integration.settings, secret, { accountId: integration.accountId, integrationId: integration.id });
  } catch (error) {
    if (error instanceof ProviderError) return failedCheck('settings', error);
    throw error;
  }
  try {
    const signal = AbortSignal.timeout(options.testTimeoutMs ?? 60_000);
    const report = await provider.testConnection(signal);
    const checks = report.checks.map((check) => ({ ...check }));
    if (!report.ok || !withSamples) return { ok: report.ok, checks };
    return await withMappedSamples(provider, checks, signal);
  } catch (error) {
    if (error instanceof ProviderError) return failedCheck('connect', error);
    throw error;
  } finally {
    await provider.close().catch(() => undefined);
  }
}

/**
 * Maps the first `limit` entries of the directory with `attributeMapping` in place of the stored
 * one (when given). Settings that cannot work and a directory that refuses fail the request with
 * one line (no secret); entries that cannot be mapped are part of the answer.
 */
async function previewWith(
  options: ControlProcessorOptions,
  integration: Integration,
  secret: string | undefined,
  limit: number,
  attributeMapping: unknown,
): Promise<PreviewResult> {
  const settings = attributeMapping === undefined ? integration.settings : { ...integration.settings, attributeMapping };
  const provider = await options.createProvider(integration.kind, settings, secret, { accountId: integration.accountId, integrationId: integration.id });
  try {
    return await previewProvider(provider, limit, AbortSignal.timeout(options.testTimeoutMs ?? 60_000));
  } finally {
    await provider.close().catch(() => undefined);
  }
}

/**
 * The BullMQ processor of the control queue: Test Connection with the stored secret
 * (`test-connection`) or with a candidate secret (`check-secret`), answered with the checklist,
 * and the token check of an answered admin-consent request (`verify-consent`), which records the
 * outcome itself so that it stands even when the caller stopped waiting.
 * A directory that refuses is a failed checklist, not a failed job; the job fails (once, one
 * line, no secret) only when the request cannot be carried out: integration gone, secret
 * unusable, payload invalid. A checked candidate is deleted whatever the outcome.
 */
export function createControlProcessor(options: ControlProcessorOptions) {
  const { db, keyRing } = options;

  async function integrationOf(id: string): Promise<Integration> {
    const integration = await getIntegration(db, id);
    if (!integration) throw new UnrecoverableError(`integration ${id} not found`);
    return integration;
  }

  async function run(job: Job): Promise<ConnectionReportResult | ConsentVerificationResult | PreviewResult> {
    switch (job.name) {
      case CONTROL_JOB_NAMES.testConnection: {
        const data = parseTestConnectionJob(job.data);
        const integration = await integrationOf(data.integrationId);
        return withIntegrationSecret(db, keyRing, integration.id, (secret) => testWith(options, integration, secret, true));
      }
      case CONTROL_JOB_NAMES.previewMapping: {
        const data = parsePreviewJob(job.data);
        const integration = await integrationOf(data.integrationId);
        return withIntegrationSecret(db, keyRing, integration.id, (secret) => previewWith(options, integration, secret, data.limit, data.attributeMapping));
      }
      case CONTROL_JOB_NAMES.checkSecret: {
        const data = parseCheckSecretJob(job.data);
        try {
          const integration = await integrationOf(data.integrationId);
          return await withSecretCandidate(db, keyRing, integration.id, data.candidateId, (secret) => testWith(options, integration, secret));
        } finally {
          await deleteSecretCandidate(db, data.candidateId);
        }
      }
      case CONTROL_JOB_NAMES.verifyConsent: {
        const data = parseVerifyConsentJob(job.data);
        const outcome = await verifyTenantConsent(
          { db, keyRing, timeoutMs: options.testTimeoutMs, destinations: options.destinations, propagationWaitMs: options.consentPropagationWaitMs },
          data.nonce,
        );
        return { outcome: outcome.outcome, detail: outcome.detail };
      }
      default:
        throw new UnrecoverableError(`unknown control job "${job.name}"`);
    }
  }

  return async function processControlJob(job: Job): Promise<ConnectionReportResult | ConsentVerificationResult | PreviewResult> {
    const data = (job.data ?? {}) as { integrationId?: unknown; requestId?: unknown };
    const log = options.logger.child({ jobId: job.id, job: job.name, integrationId: data.integrationId, requestId: data.requestId });
    try {
      const report = await run(job);
      if ('checks' in report) log.info({ ok: report.ok, failedChecks: report.checks.filter((c) => !c.ok).map((c) => c.name) }, 'control job answered');
      else if ('samples' in report) log.info({ samples: report.samples.length, problems: report.problems.length }, 'control job answered');
      else log.info({ outcome: report.outcome }, 'control job answered');
      return report;
    } catch (error) {
      const message = classifyFailure(error).message;
      log.warn({ error: message }, 'control job failed');
      // One attempt only: the caller is waiting and asks again if it wants to.
      throw new UnrecoverableError(message);
    }
  };
}
