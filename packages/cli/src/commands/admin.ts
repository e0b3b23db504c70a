import { runSchema, type RunStatus, runStatuses } from '@dirsync/contracts';
import { z } from 'zod';
import type { Command } from 'commander';
import {
  approveRun,
  countSecretsByKey,
  createAccount,
  ensureDatabase,
  generateSecretKey,
  getRun,
  listAccounts,
  listRuns,
  migrate,
  recordAudit,
  rotateSecretKeys,
} from '@dirsync/db';
import type { Context } from '../context.ts';
import { UserError, UsageError, NotFoundError } from '../errors.ts';
import { duration, printJson, table } from '../format.ts';

/** `accounts list --json` (accounts have no API resource: their own stable shape). */
const accountListSchema = z.object({ items: z.array(z.object({ id: z.uuid(), name: z.string(), createdAt: z.iso.datetime({ offset: true }) })) });
import { describeRun } from '../report.ts';
import { presentRunOf } from './sync.ts';

type Run = (ctx: Context) => Promise<void>;
type WithContext = (run: Run) => Promise<void>;

/** `db`, `accounts`, `runs` and `secrets` command groups. */
export function registerAdminCommands(program: Command, withContext: WithContext): void {
  const db = program.command('db').description('database administration');
  db.command('migrate')
    .description('create the database when missing and apply migrations')
    .action(() =>
      withContext(async (ctx) => {
        const database = await ensureDatabase(ctx.config.DATABASE_URL);
        if (database.created) console.log(`created database ${database.name}`);
        const { applied } = await migrate(ctx.config.DATABASE_URL);
        console.log(applied === 0 ? 'database is up to date' : `applied ${applied} migration${applied === 1 ? '' : 's'}`);
      }),
    );

  const accounts = program.command('accounts').description('customer accounts (tenants)');
  accounts
    .command('add <name>')
    .description('create an account')
    .action((name: string) =>
      withContext(async (ctx) => {
        const account = await createAccount(ctx.db(), { name });
        await recordAudit(ctx.db(), { accountId: account.id, actor: 'cli', action: 'account.created', details: { name } });
        console.log(account.id);
      }),
    );
  accounts
    .command('list')
    .description('list accounts')
    .option('--json', 'print JSON: { "items": [{ "id", "name", "createdAt" }] }')
    .action((flags: { json?: boolean }) =>
      withContext(async (ctx) => {
        const rows = await listAccounts(ctx.db());
        if (flags.json) {
          printJson(accountListSchema, { items: rows.map((a) => ({ id: a.id, name: a.name, createdAt: a.createdAt })) });
          return;
        }
        console.log(table(['id', 'name', 'created'], rows.map((a) => [a.id, a.name, a.createdAt])));
      }),
    );

  const runs = program.command('runs').description('sync run reports');
  runs
    .command('list')
    .description('list runs, newest first')
    .option('-i, --integration <id>', 'only this integration')
    .option('-s, --status <status>', `only this status (${runStatuses.join(', ')})`)
    .option('-n, --limit <n>', 'how many', '20')
    .option('--json', 'print JSON: { "items": [run] }, each as GET /v1/runs/{id} answers it')
    .action((options: { integration?: string; status?: string; limit: string; json?: boolean }) =>
      withContext(async (ctx) => {
        if (options.status && !(runStatuses as readonly string[]).includes(options.status)) {
          throw new UsageError(`unknown status "${options.status}": use one of ${runStatuses.join(', ')}`);
        }
        const limit = Number(options.limit);
        if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive integer');
        const rows = await listRuns(ctx.db(), {
          ...(options.integration ? { integrationId: options.integration } : {}),
          ...(options.status ? { status: options.status as RunStatus } : {}),
          limit,
        });
        if (options.json) {
          printJson(z.object({ items: z.array(runSchema) }), { items: await Promise.all(rows.map((row) => presentRunOf(row))) });
          return;
        }
        console.log(
          table(
            ['run', 'integration', 'mode', 'trigger', 'status', 'fetched', 'created', 'updated', 'deleted', 'took', 'queued'],
            rows.map((r) => [
              r.id,
              r.integrationId,
              r.mode ?? r.modeRequested,
              r.trigger,
              r.status,
              r.fetched,
              r.created,
              r.updated,
              r.deleted,
              duration(r.durationMs),
              r.queuedAt,
            ]),
          ),
        );
      }),
    );
  runs
    .command('show <run>')
    .description('show a run report')
    .option('--json', 'print JSON: the run as GET /v1/runs/{id} answers it')
    .action((id: string, flags: { json?: boolean }) =>
      withContext(async (ctx) => {
        const run = await getRun(ctx.db(), id);
        if (!run) throw new NotFoundError(`no run ${id}`);
        if (flags.json) printJson(runSchema, await presentRunOf(run));
        else console.log(describeRun(run));
      }),
    );
  runs
    .command('approve <run>')
    .description('allow the deletions of a run blocked by the deletion threshold (the next run applies them)')
    .option('--by <name>', 'who approves', 'cli')
    .option('--json', 'print the approved run as JSON, as POST /v1/runs/{id}/approve answers')
    .action((id: string, options: { by: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const run = await approveRun(ctx.db(), id, options.by);
        await recordAudit(ctx.db(), {
          integrationId: run.integrationId,
          actor: options.by,
          action: 'run.approved',
          details: { runId: run.id, wouldDelete: run.wouldDelete },
        });
        if (options.json) {
          const approved = await getRun(ctx.db(), run.id);
          printJson(runSchema, approved === undefined ? undefined : await presentRunOf(approved));
          return;
        }
        console.log(`approved: the next ${run.mode ?? run.modeRequested} run of ${run.integrationId} may delete up to ${run.wouldDelete} objects`);
      }),
    );

  const secrets = program.command('secrets').description('encryption keys of stored secrets');
  secrets
    .command('generate-key')
    .description('print a new random key for DIRSYNC_SECRET_KEY')
    .action(() => {
      console.log(generateSecretKey());
    });
  secrets
    .command('rotate-key')
    .description('re-encrypt every stored secret under DIRSYNC_SECRET_KEY (old keys in DIRSYNC_SECRET_KEYS_PREVIOUS)')
    .action(() =>
      withContext(async (ctx) => {
        const ring = ctx.keyRing();
        const report = await rotateSecretKeys(ctx.db(), ring);
        const byColumn = Object.fromEntries(report.columns.map((c) => [c.column, c.reencrypted]));
        await recordAudit(ctx.db(), { actor: 'cli', action: 'secrets.key_rotated', details: { reencrypted: report.reencrypted, keyId: ring.currentKeyId, columns: byColumn } });
        console.log(`re-encrypted ${report.reencrypted} secret(s) under key ${ring.currentKeyId}`);
        console.log(table(['column', 're-encrypted'], report.columns.map((c) => [c.column, String(c.reencrypted)])));
        // A process still running with the old key as its current one may have written since:
        // the old key may go only once nothing is left under it.
        const others = (await countSecretsByKey(ctx.db())).filter((c) => c.keyId !== ring.currentKeyId);
        if (others.length === 0) {
          console.log('every stored secret is under the current key: the previous keys can be removed once every process runs with it');
        } else {
          const left = others.map((c) => `${c.count} in ${c.column} under key ${c.keyId ?? '(none)'}`).join(', ');
          throw new UserError(`secrets were written under another key during the rotation (${left}): give every process the new DIRSYNC_SECRET_KEY, then run rotate-key again`);
        }
      }),
    );

}
