import { randomBytes } from 'node:crypto';
import {
  createAccount,
  createConnector,
  createConsoleSignInLink,
  createIntegration,
  setLegacyMigrationDeadline,
} from '@dirsync/db';
import { validateSettings } from '@dirsync/providers';
import {
  adTestDirectory,
  type EntraEmulator,
  grantTombstoneRead,
  populateEntraTenant,
  realmBaseDn,
  registerEmulatedConnectorApp,
  type SambaServer,
  type SlapdServer,
  startEntraEmulator,
  startSamba,
  startSlapd,
  waitFor,
} from '@dirsync/testkit';
import type { Context } from '@dirsync/cli';
import { ldapIntegrationSettings } from '../local-directory.ts';
import { demoServiceEnv } from './demo-env.ts';
import { breakingEnv, freeLocalPort, inDemoRun, startSchedulerAndWorker } from './demo-run.ts';

/** How long the printed sign-in link works. */
const linkMinutes = 60;

/** Days until the demo's deadline for migrating legacy Entra ID integrations. */
const migrationDays = 30;

/** Settings validated as `dirsync integrations add` stores them (defaults applied). */
function validated(kind: string, settings: Record<string, unknown>): Record<string, unknown> {
  const result = validateSettings(kind, settings);
  if (!result.ok) throw new Error(`the demo's ${kind} settings are invalid: ${result.problems.join('; ')}`);
  return result.settings as Record<string, unknown>;
}

/**
 * A throwaway Samba AD domain controller with a small directory and a read-only service
 * account, or the reason there is none (Samba is not installed everywhere).
 */
async function startDemoSamba(): Promise<{ server: SambaServer; settings: Record<string, unknown>; password: string; ouDn: string } | { reason: string }> {
  const realm = 'DIRSYNC.TEST';
  const directory = adTestDirectory(realmBaseDn(realm), { ou: 'Demo', users: 60, groups: 4, membersPerGroup: 15, contacts: 5 });
  const password = `Ds-${randomBytes(9).toString('base64url')}-a1A`;
  let server: SambaServer;
  try {
    server = await startSamba({ realm, entries: directory.entries, accounts: [{ name: 'dirsync-reader', password }] });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { reason: /ENOENT/.test(message) ? 'samba-tool is not installed' : message.split('\n')[0] ?? message };
  }
  const readerDn = `CN=dirsync-reader,CN=Users,${server.baseDn}`;
  await grantTombstoneRead(server, readerDn);
  const settings = validated('active_directory', {
    url: server.ldapsUrl,
    bindDn: readerDn,
    baseDns: [directory.ouDn],
    tls: { serverName: server.dnsHostName, caPem: server.caPem },
  });
  return { server, settings, password, ouDn: directory.ouDn };
}

/**
 * The platform's connector on the emulator (its redirect URI is the console's consent callback)
 * and a customer tenant with a legacy integration: the customer's own app and client secret.
 */
async function setUpEntra(ctx: Context, emulator: EntraEmulator, accountId: string, consoleUrl: string): Promise<{ connectorName: string; tenantId: string; legacyClientId: string }> {
  const db = ctx.db();
  const redirectUri = `${consoleUrl}/v1/consent/callback`;
  const registered = await registerEmulatedConnectorApp(emulator, { redirectUri, subject: 'dirsync demo connector' });
  const connectorName = `demo-${Date.now().toString(36)}`;
  await createConnector(db, ctx.keyRing(), { name: connectorName, description: 'Directory sync connector of the demo (emulated Entra ID)', ...registered.connector }, registered.certificate);
  const tenant = emulator.createTenant({ domain: 'fabrikam.onmicrosoft.com' });
  const legacySecret = randomBytes(18).toString('base64url');
  const legacyApp = emulator.registerApplication({ homeTenantId: tenant.tenantId, displayName: 'Fabrikam directory sync (old app)', clientSecret: legacySecret });
  populateEntraTenant(tenant, { users: 40, groups: 4, membersPerGroup: 10 });
  await createIntegration(
    db,
    {
      accountId,
      kind: 'entra_id',
      name: 'Fabrikam',
      settings: validated('entra_id', {
        tenantId: tenant.tenantId,
        legacyApp: { clientId: legacyApp.appId },
        authorityHost: emulator.authorityHost,
        graphBaseUrl: emulator.graphBaseUrl,
        caPem: emulator.caPem,
      }),
    },
    { ring: ctx.keyRing(), plaintext: legacySecret },
  );
  return { connectorName, tenantId: tenant.tenantId, legacyClientId: legacyApp.appId };
}

/**
 * `dirsync demo --console`: the demo's directories, the API with the console, a scheduler and a
 * worker, kept running until Ctrl-C (or SIGTERM), then everything it started is stopped.
 */
export async function consoleDemo(
  size: { users: number; groups: number; members: number },
  options: { port?: number | undefined; breakService?: string | undefined },
  say: (line: string) => void,
): Promise<void> {
  await inDemoRun(
    say,
    async (run, ctx, watch, base) => {
      let slapd: SlapdServer | undefined;
      let samba: SambaServer | undefined;
      let emulator: EntraEmulator | undefined;
      try {
        const db = ctx.db();
        const port = options.port ?? (await freeLocalPort());
        const consoleUrl = (base.config.DIRSYNC_CONSOLE_URL ?? `http://127.0.0.1:${port}`).replace(/\/+$/, '');

        say(`starting the directories: a throwaway slapd (${size.users} users), a Samba AD domain controller, an emulated Microsoft Entra ID`);
        const [ldap, ad, entra] = await Promise.all([
          startSlapd({ tls: true, data: { users: size.users, groups: size.groups, membersPerGroup: size.members, timestamp: new Date(Date.now() - 86_400_000) } }),
          startDemoSamba(),
          startEntraEmulator(),
        ]);
        slapd = ldap;
        emulator = entra;
        say(`  LDAP: ${slapd.url}`);
        if ('reason' in ad) say(`  Active Directory: not available here (${ad.reason}); the demo goes on without it`);
        else {
          samba = ad.server;
          say(`  Active Directory: ${ad.server.ldapsUrl} (Samba, realm ${ad.server.realm})`);
        }
        say(`  Entra ID: authority ${emulator.authorityHost}, Graph ${emulator.graphBaseUrl} (HTTPS with its own test CA: a browser warns about its pages)`);
        // Starting the directories takes a while: a Ctrl-C meanwhile stops the demo here.
        watch.check();

        // The run's database is new: the account and its integrations are this demo's alone.
        const account = await createAccount(db, { name: 'demo' });
        await createIntegration(
          db,
          { accountId: account.id, kind: 'ldap', name: 'Demo directory', description: 'generated OpenLDAP directory of the demo', settings: ldapIntegrationSettings(slapd) as Record<string, unknown> },
          { ring: ctx.keyRing(), plaintext: slapd.readerPassword },
        );
        if (!('reason' in ad)) {
          await createIntegration(
            db,
            { accountId: account.id, kind: 'active_directory', name: 'Head office', description: 'Samba AD domain controller of the demo', settings: ad.settings },
            { ring: ctx.keyRing(), plaintext: ad.password },
          );
        }
        const legacy = await setUpEntra(ctx, emulator, account.id, consoleUrl);
        const deadline = new Date(Date.now() + migrationDays * 86_400_000);
        deadline.setUTCHours(0, 0, 0, 0);
        await setLegacyMigrationDeadline(db, deadline);
        say(`account "demo": ${'reason' in ad ? 2 : 3} integrations; "Fabrikam" is a legacy Entra ID integration (its own app ${legacy.legacyClientId}) to migrate to connector "${legacy.connectorName}" before ${deadline.toISOString().slice(0, 10)}`);

        const env = demoServiceEnv(base, run);
        watch.start('api', ['api'], { ...env, PORT: String(port), DIRSYNC_API_HOST: base.config.DIRSYNC_API_HOST, DIRSYNC_CONSOLE_URL: consoleUrl, ...breakingEnv(options.breakService, 'api') });
        startSchedulerAndWorker(watch, run, env, options.breakService);
        await waitFor(
          async () => {
            // An API that cannot listen (its port taken) exits: the watch reports it with its output.
            watch.check();
            const ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
              (r) => r.ok,
              () => false,
            );
            return ready;
          },
          { timeoutMs: 120_000, intervalMs: 200, what: 'the API to answer' },
        );
        say(`started the API with the console, a scheduler and a worker (logs in .tmp/demo-${run.id}-*.log)\n`);

        const { token } = await createConsoleSignInLink(db, { accountId: account.id, role: 'admin', ttlMs: linkMinutes * 60_000, createdBy: 'demo' });
        say(`console: ${consoleUrl}/console/`);
        say(`sign in: ${consoleUrl}/console/auth/link?token=${encodeURIComponent(token)}`);
        say(`  (a one-time link for account "demo" as admin, valid ${linkMinutes} minutes; \`dirsync console login --account demo\` prints another)`);
        say('press Ctrl-C to stop the demo');
        // Until Ctrl-C, or until a process of the demo exits (then the demo fails, naming it).
        throw await watch.failed;
      } finally {
        await watch.stop();
        await slapd?.stop();
        await samba?.stop();
        await emulator?.close();
      }
    },
    { untilInterrupted: true },
  );
  say('demo stopped');
}
