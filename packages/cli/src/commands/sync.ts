import { syncAnswerSchema, type SyncMode, type SyncTrigger } from '@dirsync/contracts';
import type { Command } from 'commander';
import type { presentRun } from '@dirsync/api';
import { getRun, requireIntegration, type Run, type RunRow } from '@dirsync/db';
import { redisSettingsOf } from '../config.ts';
import type { Context } from '../context.ts';
import { exitCodes, UserError, UsageError, type ExitCode } from '../errors.ts';
import { printJson, progressBar } from '../format.ts';
import { describeRun } from '../report.ts';
import { apiPackage, jobsPackage, schedulerPackage } from '../packages.ts';

type WithContext = (run: (ctx: Context) => Promise<void>) => Promise<void>;

const finalStatuses = new Set(['succeeded', 'failed', 'blocked', 'dry_run']);

/** A run as the API reads it (timestamps as RFC 3339 text), for `presentRun`. */
export function runRowOf(run: Run): RunRow {
  const iso = (value: Date | null) => (value === null ? null : value.toISOString());
  return { ...run, approvedAt: iso(run.approvedAt), queuedAt: run.queuedAt.toISOString(), startedAt: iso(run.startedAt), finishedAt: iso(run.finishedAt) };
}

/** `run` as the API presents it (the `--json` output). */
export async function presentRunOf(run: Run): Promise<ReturnType<typeof presentRun>> {
  const api = await apiPackage();
  return api.presentRun(runRowOf(run));
}

/** The exit code of a command that waited for `run` to end (see `exitCodes`). */
export function exitCodeOfRun(run: Pick<Run, 'status'>): ExitCode {
  if (run.status === 'failed') return exitCodes.failed;
  if (run.status === 'blocked') return exitCodes.blocked;
  return exitCodes.succeeded;
}

/** Options of {@link requestIntegrationSync}. */
export interface SyncRequestOptions {
  integrationId: string;
  mode: SyncMode;
  trigger: SyncTrigger;
  dryRun: boolean;
  requestedBy: string;
}

/**
 * Asks for a sync of an enabled integration through the same {@link requestSync} as the
 * scheduler and the API (job queued, queued run recorded, a waiting sync absorbing the request).
 * Returns the job and run ids.
 */
export async function requestIntegrationSync(ctx: Context, options: SyncRequestOptions) {
  const integration = await requireIntegration(ctx.db(), options.integrationId);
  if (!integration.enabled) throw new UserError(`integration ${integration.id} is disabled`);
  const { requestSync } = await schedulerPackage();
  return requestSync({ db: ctx.db(), enqueue: await ctx.enqueue() }, { ...options, integrationId: integration.id });
}

/**
 * Waits for a run to end, drawing the job's progress on stderr when it is a terminal. Polls the
 * run row (the source of truth) and the job's progress, with no deadline: Ctrl-C leaves the run
 * going.
 */
export async function waitForRun(
  ctx: Context,
  runId: string,
  jobId: string,
  options: { quiet?: boolean; timeoutMs?: number } = {},
): Promise<Run | undefined> {
  const deadline = options.timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + options.timeoutMs;
  const { createQueueClient } = await jobsPackage();
  const queues = createQueueClient({ connection: redisSettingsOf(ctx.config), prefix: ctx.config.DIRSYNC_QUEUE_PREFIX });
  const tty = process.stderr.isTTY && !options.quiet;
  try {
    for (;;) {
      const run = await getRun(ctx.db(), runId);
      if (run && finalStatuses.has(run.status)) {
        if (tty) process.stderr.write('\r\x1b[K');
        return run;
      }
      if (tty) {
        // The job sits on its integration's shard, named by the run row.
        const job = run === undefined ? undefined : await queues.queueOf('sync', run.integrationId).getJob(jobId);
        const progress = job?.progress as { processed?: number; total?: number } | undefined;
        const state = run?.status === 'retrying' ? `retrying (attempt ${run.attempt} of ${run.maxAttempts ?? '?'})` : (run?.status ?? 'queued');
        process.stderr.write(`\r\x1b[K${state} ${progressBar(progress?.processed ?? 0, progress?.total)}`);
      }
      if (Date.now() >= deadline) {
        if (tty) process.stderr.write('\r\x1b[K');
        return undefined;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    await queues.close();
  }
}

/** `dirsync sync <integration>`. */
export function registerSyncCommand(program: Command, withContext: WithContext): void {
  program
    .command('sync <integration>')
    .description('enqueue a sync of an integration now')
    .option('--full', 'full sync (mark and sweep; finds deletions)')
    .option('--delta', 'delta sync (changes since the last run; the default)')
    .option('--dry-run', 'compute the report without writing directory data')
    .option('--recovery', 'mark the run as a recovery after an interruption (trigger "recovery")')
    .option('--wait', 'wait for the run to end (succeeded, failed, blocked, dry_run) and print its report')
    .option('--timeout <seconds>', `with --wait: give up waiting after this long (exit code ${exitCodes.timedOut})`)
    .option('--by <name>', 'who asks', 'cli')
    .option('--json', 'print JSON as POST /v1/integrations/{id}/syncs answers: { runId, jobId, mode, dryRun, deduplicated, upgraded, run }')
    .action((id: string, options: { full?: boolean; delta?: boolean; dryRun?: boolean; recovery?: boolean; wait?: boolean; timeout?: string; by: string; json?: boolean }) =>
      withContext(async (ctx) => {
        if (options.full && options.delta) throw new UsageError('choose one of --full and --delta');
        const timeoutSeconds = options.timeout === undefined ? undefined : Number(options.timeout);
        if (timeoutSeconds !== undefined && !(timeoutSeconds > 0)) throw new UsageError('--timeout must be a positive number of seconds');
        if (timeoutSeconds !== undefined && !options.wait) throw new UsageError('--timeout needs --wait');
        const result = await requestIntegrationSync(ctx, {
          integrationId: id,
          mode: options.full ? 'full' : 'delta',
          trigger: options.recovery ? 'recovery' : 'manual',
          dryRun: Boolean(options.dryRun),
          requestedBy: options.by,
        });
        if (options.json) {
          // The run as it stands when the command ends: queued, final, or still going after --timeout.
          const run = options.wait
            ? ((await waitForRun(ctx, result.runId, result.jobId, { quiet: true, ...(timeoutSeconds === undefined ? {} : { timeoutMs: timeoutSeconds * 1000 }) })) ?? (await getRun(ctx.db(), result.runId)))
            : await getRun(ctx.db(), result.runId);
          printJson(syncAnswerSchema, { ...result, ...(run ? { run: await presentRunOf(run) } : {}) });
          if (options.wait) process.exitCode = run && finalStatuses.has(run.status) ? exitCodeOfRun(run) : exitCodes.timedOut;
          return;
        }
        console.log(
          `${result.deduplicated ? 'already waiting' : 'queued'}: ${result.mode}${result.dryRun ? ' (dry run)' : ''} run ${result.runId} (job ${result.jobId})` +
            (result.upgraded ? ' — a waiting delta was upgraded to full' : ''),
        );
        if (!options.wait) return;
        const run = await waitForRun(ctx, result.runId, result.jobId, timeoutSeconds === undefined ? {} : { timeoutMs: timeoutSeconds * 1000 });
        if (!run) {
          console.log(`timed out: run ${result.runId} has not ended yet (it goes on)`);
          process.exitCode = exitCodes.timedOut;
          return;
        }
        console.log(describeRun(run));
        process.exitCode = exitCodeOfRun(run);
      }),
    );
}
