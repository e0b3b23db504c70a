import type { Command } from 'commander';
import { type ActionNeeded, getLegacyMigrationDeadline, listActionsNeeded, recordAudit, setLegacyMigrationDeadline } from '@dirsync/db';
import type { Context } from '../context.ts';
import { UsageError } from '../errors.ts';

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

/** `dirsync actions-needed` and `dirsync migration-deadline`. */
export function registerActionCommands(program: Command, withContext: WithContext): void {
  program
    .command('actions-needed')
    .description('what administrators must do: legacy Entra integrations to migrate, consents, failed rotations')
    .option('--json', 'print the actions as JSON')
    .action((flags: { json?: boolean }) =>
      withContext(async (ctx) => {
        const actions = await listActionsNeeded(ctx.db());
        if (flags.json) {
          console.log(JSON.stringify(actions, null, 2));
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
    .action((date: string | undefined, flags: { clear?: boolean }) =>
      withContext(async (ctx) => {
        if (flags.clear && date !== undefined) throw new UsageError('give a date or --clear, not both');
        if (flags.clear || date !== undefined) {
          const deadline = flags.clear ? null : parseDeadline(date as string);
          await setLegacyMigrationDeadline(ctx.db(), deadline);
          await recordAudit(ctx.db(), { actor: 'cli', action: 'entra.migration_deadline.set', details: { deadline: deadline?.toISOString() ?? null } });
        }
        const current = await getLegacyMigrationDeadline(ctx.db());
        console.log(current === null ? 'no migration deadline' : `legacy Entra ID integrations stop syncing after ${current.toISOString()}`);
      }),
    );
}
