import type { Command } from 'commander';
import { auditPageSchema, auditQuery } from '@dirsync/contracts';
import { displayText, getAccount, listAccountAudit } from '@dirsync/db';
import type { Context } from '../context.ts';
import { NotFoundError, UsageError } from '../errors.ts';
import { printJson, table } from '../format.ts';

type WithContext = (run: (ctx: Context) => Promise<void>) => Promise<void>;

interface AuditFlags {
  account: string;
  since?: string;
  until?: string;
  actor?: string;
  action?: string;
  integration?: string;
  limit: string;
  cursor?: string;
  json?: boolean;
}

/** The flags as the API's query, checked by the same schema so both accept the same filters. */
function queryOf(flags: AuditFlags) {
  const parsed = auditQuery.safeParse({
    since: flags.since,
    until: flags.until,
    actor: flags.actor,
    action: flags.action,
    integrationId: flags.integration,
    limit: flags.limit,
    cursor: flags.cursor,
  });
  if (!parsed.success) {
    const flagOf: Record<string, string> = { integrationId: 'integration' };
    const issue = parsed.error.issues[0];
    const key = String(issue?.path[0] ?? '');
    throw new UsageError(`--${flagOf[key] ?? key}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

// Actors and details hold text an account chose (key names, integration names): shown without
// control or bidi characters, which would otherwise drive the operator's terminal.
const detailsText = (details: Record<string, unknown>) => {
  const text = JSON.stringify(details);
  return text === '{}' ? '' : displayText(text, 120);
};

/** `dirsync audit`: an account's audit log, with the filters of `GET /v1/audit`. */
export function registerAuditCommand(program: Command, withContext: WithContext): void {
  program
    .command('audit')
    .description("an account's audit log, newest first (who changed what)")
    .requiredOption('--account <account>', 'account id or name')
    .option('--since <time>', 'only events at or after this ISO 8601 date-time')
    .option('--until <time>', 'only events before this ISO 8601 date-time')
    .option('--actor <text>', 'only events whose actor contains this text')
    .option('--action <action>', 'only this action (integration.created), or a prefix (integration.*)')
    .option('--integration <id>', 'only events of this integration')
    .option('--limit <n>', 'events per page (1–1000)', '100')
    .option('--cursor <cursor>', 'the next page: the nextCursor a previous call printed')
    .option('--json', 'print {"items": [{id, occurredAt, actor, action, integrationId, details}], "nextCursor"} as JSON')
    .action((flags: AuditFlags) =>
      withContext(async (ctx) => {
        const query = queryOf(flags);
        const account = await getAccount(ctx.db(), flags.account);
        if (!account) throw new NotFoundError(`no account "${flags.account}"`);
        const page = await listAccountAudit(ctx.db(), account.id, query);
        if (flags.json) {
          printJson(auditPageSchema, page);
          return;
        }
        if (page.items.length === 0) {
          console.log('no audit events');
          return;
        }
        console.log(table(['time', 'actor', 'action', 'integration', 'details'], page.items.map((e) => [e.occurredAt, displayText(e.actor), displayText(e.action), e.integrationId ?? '', detailsText(e.details)])));
        if (page.nextCursor !== null) console.log(`\nmore: dirsync audit --account ${flags.account} --cursor ${page.nextCursor}`);
      }),
    );
}
