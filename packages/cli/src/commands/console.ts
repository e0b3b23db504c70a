import type { Command } from 'commander';
import { consoleRoles, createConsoleSignInLink, getAccount, isConsoleRole, recordAudit } from '@dirsync/db';
import { consoleUrlOf } from '../config.ts';
import type { Context } from '../context.ts';
import { UsageError, NotFoundError } from '../errors.ts';

type WithContext = (run: (ctx: Context) => Promise<void>) => Promise<void>;

/** Longest a one-time link may live: it is a credential in a URL, meant to be used at once. */
const maxLinkMinutes = 24 * 60;

/** `dirsync console login`: one-time sign-in links to the console. */
export function registerConsoleCommands(program: Command, withContext: WithContext): void {
  const consoleCommand = program.command('console').description('the administration console served by the API under /console');
  consoleCommand
    .command('login')
    .description('print a one-time sign-in link to the console for one account (works once, expires after --minutes)')
    .requiredOption('--account <account>', 'account id or name the link signs in to')
    .option('--role <role>', `role on the account: ${consoleRoles.join(', ')}`, 'admin')
    .option('--minutes <minutes>', 'minutes the link can be used', '15')
    .action((flags: { account: string; role: string; minutes: string }) =>
      withContext(async (ctx) => {
        if (!isConsoleRole(flags.role)) throw new UsageError(`unknown role "${flags.role}": use ${consoleRoles.join(', ')}`);
        const minutes = Number(flags.minutes);
        if (!Number.isInteger(minutes) || minutes < 1 || minutes > maxLinkMinutes) throw new UsageError(`--minutes must be a whole number from 1 to ${maxLinkMinutes}`);
        const account = await getAccount(ctx.db(), flags.account);
        if (!account) throw new NotFoundError(`no account "${flags.account}"`);
        const { link, token } = await createConsoleSignInLink(ctx.db(), { accountId: account.id, role: flags.role, ttlMs: minutes * 60_000, createdBy: 'cli' });
        await recordAudit(ctx.db(), { accountId: account.id, actor: 'cli', action: 'console.sign_in_link.created', details: { linkId: link.id, role: link.role, expiresAt: link.expiresAt.toISOString() } });
        process.stderr.write(`one-time sign-in link for ${account.name} (${link.role}), valid until ${link.expiresAt.toISOString()}; it works once:\n`);
        console.log(`${consoleUrlOf(ctx.config)}/console/auth/link?token=${encodeURIComponent(token)}`);
      }),
    );
}
