import type { Command } from 'commander';
import { Queue } from 'bullmq';
import { createRun, getRun, requireIntegration, type Run } from '@dirsync/db';
import { SYNC_QUEUE, type SyncMode, type SyncTrigger } from '@dirsync/jobs';
import type { Context } from '../context.ts';
import { UserError } from '../errors.ts';
import { progressBar } from '../format.ts';
import { describeRun } from '../report.ts';

type WithContext = (run: (ctx: Context) => Promise<void>) => Promise<void>;

const finalStatuses = new Set(['succeeded', 'failed', 'blocked_by_threshold', 'dry_run']);

/** Options of {@link requestSync}. */
export interface SyncRequestOptions {
  integrationId: string;
  mode: SyncMode;
  trigger: SyncTrigger;
  dryRun: boolean;
  requestedBy: string;
}

/**
 * Enqueues a sync and records its queued run (unless an equivalent waiting job absorbed the
 * request, whose run already exists). Returns the job and run ids.
 */
export async function requestSync(ctx: Context, options: SyncRequestOptions) {
  const integration = await requireIntegration(ctx.db(), options.integrationId);
  if (!integration.enabled) throw new UserError(`integration ${integration.id} is disabled`);
  const result = await ctx.enqueue().enqueueSync({
    integrationId: integration.id,
    mode: options.mode,
    trigger: options.trigger,
    dryRun: options.dryRun,
    requestedBy: options.requestedBy,
  });
  if (!result.deduplicated) {
    await createRun(ctx.db(), {
      id: result.runId,
      integrationId: integration.id,
      jobId: result.jobId,
      modeRequested: result.mode,
      trigger: options.trigger,
      dryRun: options.dryRun,
      requestedBy: options.requestedBy,
    });
  }
  return result;
}

/**
 * Waits for a run to end, drawing the job's progress on stderr when it is a terminal. Polls the
 * run row (the source of truth) and the job's progress, with no deadline: Ctrl-C leaves the run
 * going.
 */
export async function waitForRun(ctx: Context, runId: string, jobId: string, options: { quiet?: boolean } = {}): Promise<Run> {
  const queue = new Queue(SYNC_QUEUE, { connection: { url: ctx.config.REDIS_URL }, prefix: ctx.config.DIRSYNC_QUEUE_PREFIX });
  const tty = process.stderr.isTTY && !options.quiet;
  try {
    for (;;) {
      const run = await getRun(ctx.db(), runId);
      if (run && finalStatuses.has(run.status)) {
        if (tty) process.stderr.write('\r\x1b[K');
        return run;
      }
      if (tty) {
        const job = await queue.getJob(jobId);
        const progress = job?.progress as { processed?: number; total?: number } | undefined;
        const state = run?.status ?? 'queued';
        process.stderr.write(`\r\x1b[K${state} ${progressBar(progress?.processed ?? 0, progress?.total)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  } finally {
    await queue.close();
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
    .option('--wait', 'wait for the run to finish and print its report')
    .option('--by <name>', 'who asks', 'cli')
    .action((id: string, options: { full?: boolean; delta?: boolean; dryRun?: boolean; recovery?: boolean; wait?: boolean; by: string }) =>
      withContext(async (ctx) => {
        if (options.full && options.delta) throw new UserError('choose one of --full and --delta');
        const result = await requestSync(ctx, {
          integrationId: id,
          mode: options.full ? 'full' : 'delta',
          trigger: options.recovery ? 'recovery' : 'manual',
          dryRun: Boolean(options.dryRun),
          requestedBy: options.by,
        });
        console.log(
          `${result.deduplicated ? 'already waiting' : 'queued'}: ${result.mode}${result.dryRun ? ' (dry run)' : ''} run ${result.runId} (job ${result.jobId})` +
            (result.upgraded ? ' — a waiting delta was upgraded to full' : ''),
        );
        if (!options.wait) return;
        const run = await waitForRun(ctx, result.runId, result.jobId);
        console.log(describeRun(run));
        if (run.status === 'failed') process.exitCode = 2;
      }),
    );
}
