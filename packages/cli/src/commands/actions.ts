import type { Command } from 'commander';
import { z } from 'zod';
import { consentStatuses } from '@dirsync/contracts';
import { type ActionNeeded, getLegacyMigrationDeadline, listActionsNeeded, recordAudit, setLegacyMigrationDeadline } from '@dirsync/db';
import type { Context } from '../context.ts';
import { UsageError } from '../errors.ts';
import { printJson } from '../format.ts';

type WithContext = (run: (ctx: Context) => Promise<void>) => Promise<void>;

const day = (date: Date) => date.toISOString().slice(0, 10);

/** One action as a line an administrator can act on (the command to run, where there is one). */
export function describeAction(action: ActionNeeded): string {
  switch (action.kind) {
    case 'migrate_legacy_integration': {
      const when =
        action.deadline === null
          ? 'no deadline set'
          : action.overdue
            ? `deadline ${day(action.deadline)} PASSED: it no longer syncs`
            : `before ${day(action.deadline)}`;
      return `migrate legacy Entra ID integration "${action.name}" (${action.integrationId}, tenant ${action.tenantId}) to a connector, ${when}: dirsync integrations migrate ${action.integrationId} --connector <connector> --description "…"`;
    }
    case 'grant_consent':
      return `tenant ${action.tenantId} must grant admin consent (${action.consentStatus}${action.detail ? `: ${action.detail}` : ''}) for integration "${action.name}" (${action.integrationId}): dirsync connectors consent-url ${action.connectorId} --account ${action.accountId} --tenant ${action.tenantId}`;
    case 'rotation_failed':
      return `certificate rotation of connector "${action.connector}" failed${action.at ? ` at ${action.at.toISOString()}` : ''} (${action.error}); the current certificate keeps working until it expires: dirsync connectors rotate ${action.connectorId}`;
    case 'certificate_expiring':
      return `the certificate of connector "${action.connector}" expires on ${action.notAfter.toISOString()}: check that rotations run (dirsync connectors rotate ${action.connectorId})`;
    case 'delete_old_app_registration':
      return `integration "${action.name}" was migrated on ${day(action.migratedAt)}: delete its old app registration ${action.legacyClientId} from tenant ${action.tenantId}`;
  }
}

function parseDeadline(value: string): Date {
  const at = /^\d{4}-\d{2}-\d{2}$/.test(value) ? Date.parse(`${value}T23:59:59.999Z`) : Date.parse(value);
  if (Number.isNaN(at)) throw new UsageError('the deadline must be a date (2024-08-18) or an ISO 8601 date-time');
  return new Date(at);
}

const when = z.iso.datetime({ offset: true });

/**
 * `actions-needed --json`: installation-wide (every account), so its own shape rather than the
 * per-account `GET /v1/actions`: an array of actions, each told apart by `kind`.
 */
export const actionsNeededJsonSchema = z.array(
  z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('migrate_legacy_integration'), integrationId: z.uuid(), accountId: z.uuid(), name: z.string(), tenantId: z.string(), deadline: when.nullable(), overdue: z.boolean() }),
    z.object({ kind: z.literal('grant_consent'), integrationId: z.uuid(), accountId: z.uuid(), name: z.string(), connectorId: z.uuid(), tenantId: z.string(), consentStatus: z.enum([...consentStatuses, 'none']), detail: z.string().nullable() }),
    z.object({ kind: z.literal('rotation_failed'), connectorId: z.uuid(), connector: z.string(), at: when.nullable(), error: z.string() }),
    z.object({ kind: z.literal('certificate_expiring'), connectorId: z.uuid(), connector: z.string(), notAfter: when }),
    z.object({ kind: z.literal('delete_old_app_registration'), integrationId: z.uuid(), accountId: z.uuid(), name: z.string(), tenantId: z.string(), legacyClientId: z.string(), migratedAt: when }),
  ]),
);

/**
 * `migration-deadline --json`: the deadline in force once the command ends (RFC 3339, end of day
 * UTC for a date), null when none is set. No API route mirrors it.
 */
export const migrationDeadlineJsonSchema = z.object({ deadline: when.nullable() });

/** `dirsync actions-needed` and `dirsync migration-deadline`. */
export function registerActionCommands(program: Command, withContext: WithContext): void {
  program
    .command('actions-needed')
    .description('what administrators must do: legacy Entra integrations to migrate, consents, failed rotations')
    .option('--json', 'print JSON: [{ "kind", … }], each action with the fields of its kind')
    .action((flags: { json?: boolean }) =>
      withContext(async (ctx) => {
        const actions = await listActionsNeeded(ctx.db());
        if (flags.json) {
          printJson(actionsNeededJsonSchema, actions);
          return;
        }
        if (actions.length === 0) {
          console.log('nothing to do');
          return;
        }
        for (const action of actions) console.log(`- ${describeAction(action)}`);
      }),
    );

  program
    .command('migration-deadline [date]')
    .description('show or set the date after which legacy Entra ID integrations stop syncing (end of day UTC)')
    .option('--clear', 'remove the deadline')
    .option('--json', 'print JSON: { "deadline" }, the deadline in force (null when none)')
    .action((date: string | undefined, flags: { clear?: boolean; json?: boolean }) =>
      withContext(async (ctx) => {
        if (flags.clear && date !== undefined) throw new UsageError('give a date or --clear, not both');
        if (flags.clear || date !== undefined) {
          const deadline = flags.clear ? null : parseDeadline(date as string);
          await setLegacyMigrationDeadline(ctx.db(), deadline);
          await recordAudit(ctx.db(), { actor: 'cli', action: 'entra.migration_deadline.set', details: { deadline: deadline?.toISOString() ?? null } });
        }
        const current = await getLegacyMigrationDeadline(ctx.db());
        if (flags.json) {
          printJson(migrationDeadlineJsonSchema, { deadline: current });
          return;
        }
        console.log(current === null ? 'no migration deadline' : `legacy Entra ID integrations stop syncing after ${current.toISOString()}`);
      }),
    );
}
