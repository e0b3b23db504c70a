import { connectionReportSchema, integrationSchema, type IntegrationKind, integrationKinds, type MappedSample, migratedIntegrationSchema, type PreviewResult, secretAcceptedSchema, syncAnswerSchema } from '@dirsync/contracts';
import { z } from 'zod';
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import {
  createIntegration,
  displayText,
  getAccount,
  getConnector,
  getRun,
  hasGrantedConsent,
  migrateLegacyIntegration,
  requireConnector,
  listIntegrations,
  listLatestRuns,
  recordAudit,
  removeIntegration,
  requireIntegration,
  setIntegrationSecret,
  updateIntegration,
  withIntegrationSecret,
  type Integration,
  type IntegrationPatch,
  type RunRow,
} from '@dirsync/db';
import { dominoGroupAttributes, dominoPersonAttributes, previewProvider, validateSettings, type ConnectionReport } from '@dirsync/providers';
import { validateSchedule } from '@dirsync/jobs/settings';
import type { Context } from '../context.ts';
import { exitCodes, UserError, UsageError, NotFoundError } from '../errors.ts';
import { keyValues, printJson, safeJson, table } from '../format.ts';
import { readJsonFile, readSecret } from '../input.ts';
import { describeRun } from '../report.ts';
import { exitCodeOfRun, presentRunOf, requestIntegrationSync, waitForRun } from './sync.ts';
import { apiPackage, workerPackage } from '../packages.ts';

/**
 * Integrations as the API presents them (`GET /v1/integrations`), each with its latest run: one
 * query of latest runs per account among `rows`.
 */
async function presentIntegrations(ctx: Context, rows: readonly Integration[]) {
  const latest = new Map<string, RunRow>();
  for (const accountId of new Set(rows.map((row) => row.accountId))) {
    for (const [integrationId, run] of await listLatestRuns(ctx.db(), accountId, rows.filter((row) => row.accountId === accountId).map((row) => row.id))) {
      latest.set(integrationId, run);
    }
  }
  const now = new Date();
  const { presentIntegration } = await apiPackage();
  return rows.map((row) => presentIntegration(row, latest.get(row.id), now, ctx.config.DIRSYNC_SCHEDULER_JITTER_MAX_SECONDS * 1000));
}

type WithContext = (run: (ctx: Context) => Promise<void>) => Promise<void>;

/**
 * `integrations set-password --json`: what `PUT /v1/integrations/{id}/secret` answers, its
 * `sync` as `POST …/syncs` answers (with `run`, final under `--wait`); `sync` is null when Test
 * Connection refused the password.
 */
const passwordAnswerSchema = secretAcceptedSchema.extend({ sync: syncAnswerSchema.nullable() });

/** Flags shared by `add` and `update`. */
interface SettingsFlags {
  settings?: string;
  settingsFile?: string;
  url?: string;
  bindDn?: string;
  usersBase?: string[];
  groupsBase?: string[];
  usersFilter?: string;
  groupsFilter?: string;
  /** Active Directory: one list of bases and filters for users, groups and contacts. */
  base?: string[];
  filter?: string;
  excludeFilter?: string;
  objectTypes?: string;
  tlsMode?: string;
  caFile?: string;
  allowInsecure?: boolean;
  pageSize?: string;
  description?: string;
  deltaCron?: string;
  fullCron?: string;
  thresholdCount?: string;
  thresholdPercent?: string;
  /** Entra ID: the customer's tenant, and a connector or (legacy) the tenant's own app. */
  tenant?: string;
  connector?: string;
  legacyClientId?: string;
  authorityHost?: string;
  graphUrl?: string;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

function addSettingsOptions(command: Command): Command {
  return command
    .option('--settings <json>', 'provider settings as JSON (merged under the flags below)')
    .option('--settings-file <path>', 'provider settings from a JSON file')
    .option('--url <url>', 'LDAP server URL (ldaps://host or ldap://host with StartTLS)')
    .option('--bind-dn <dn>', 'DN of the read-only service account')
    .option('--users-base <dn>', 'base DN of users (repeatable)', collect)
    .option('--groups-base <dn>', 'base DN of groups (repeatable)', collect)
    .option('--users-filter <filter>', 'extra LDAP filter for users')
    .option('--groups-filter <filter>', 'extra LDAP filter for groups')
    .option('--base <dn>', 'Active Directory: base DN (an OU or the domain) of users, groups and contacts (repeatable)', collect)
    .option('--filter <filter>', 'Active Directory: only objects matching this LDAP filter')
    .option('--exclude-filter <filter>', 'Active Directory: leave out objects matching this LDAP filter')
    .option('--object-types <types>', 'Active Directory: comma-separated user, group, contact (default all three)')
    .option('--tls-mode <mode>', 'ldaps, starttls or none')
    .option('--ca-file <path>', 'PEM file of the CA that signed the server certificate')
    .option('--allow-insecure', 'allow plain LDAP (the password travels unencrypted)')
    .option('--page-size <n>', 'LDAP page size (Entra ID: Graph page size, at most 999)')
    .option('--tenant <tenant>', 'Entra ID: the customer\'s tenant (GUID or domain)')
    .option('--connector <connector>', 'Entra ID: connector (id or name) the integration authenticates with, after consent')
    .option('--legacy-client-id <guid>', 'Entra ID, legacy: the tenant\'s own app registration (its client secret is read like a password)')
    .option('--authority-host <url>', 'Entra ID, legacy: token authority (default the public cloud)')
    .option('--graph-url <url>', 'Entra ID, legacy: Microsoft Graph (default the public cloud)')
    .option('--description <text>', 'what this integration is for')
    .option('--delta-cron <cron>', 'delta schedule (default every 5 minutes)')
    .option('--full-cron <cron>', 'full schedule (default daily at 02:00 UTC)')
    .option('--threshold-count <n>', 'most deletions a run may make without approval (default 500)')
    .option('--threshold-percent <n>', 'most deletions as a percentage of objects (default 20)');
}

function integer(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} must be a whole number ≥ 0`);
  return n;
}

async function readCaFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new UserError(`cannot read --ca-file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

/** Flags that set the scope of the per-type settings (`users`, `groups`) of ldap and domino. */
const perTypeScopeFlags = { usersBase: '--users-base', groupsBase: '--groups-base', usersFilter: '--users-filter', groupsFilter: '--groups-filter' } as const;
/** Flags that set the scope of Active Directory's one list of bases. */
const adScopeFlags = { base: '--base', filter: '--filter', excludeFilter: '--exclude-filter', objectTypes: '--object-types' } as const;

/**
 * Refuses scope flags of another kind with the flags of this one: Active Directory reads users,
 * groups and contacts under one list of bases (`baseDns`), ldap and domino have a section per
 * type (`users.baseDns`, `groups.baseDns`), and Entra ID has no bases at all.
 */
function checkScopeFlags(kind: string, flags: SettingsFlags): void {
  const given = (names: Record<string, string>) => Object.entries(names).filter(([key]) => flags[key as keyof SettingsFlags] !== undefined).map(([, flag]) => flag);
  const perType = given(perTypeScopeFlags);
  const ad = given(adScopeFlags);
  if (kind === 'active_directory' && perType.length > 0) {
    throw new UsageError(
      `${perType.join(', ')}: an active_directory integration reads users, groups and contacts under one list of bases: use --base <dn> (repeatable), --filter, --exclude-filter and --object-types`,
    );
  }
  if ((kind === 'ldap' || kind === 'domino') && ad.length > 0) {
    throw new UsageError(`${ad.join(', ')}: ${kind} integrations have bases and filters per type: use --users-base, --groups-base (repeatable), --users-filter and --groups-filter`);
  }
  if (kind === 'entra_id' && perType.length + ad.length > 0) throw new UsageError(`${[...perType, ...ad].join(', ')}: entra_id integrations read the whole tenant: they have no base DN or LDAP filter`);
}

/** Builds the settings object from a base (stored or from a file) and the flags, then validates it. */
async function buildSettings(kind: string, base: Record<string, unknown>, flags: SettingsFlags): Promise<Record<string, unknown>> {
  let settings: Record<string, unknown> = structuredClone(base);
  if (flags.settingsFile) settings = { ...settings, ...((await readJsonFile(flags.settingsFile)) as Record<string, unknown>) };
  if (flags.settings) {
    try {
      settings = { ...settings, ...(JSON.parse(flags.settings) as Record<string, unknown>) };
    } catch (error) {
      throw new UsageError(`--settings is not valid JSON: ${(error as Error).message}`);
    }
  }
  const section = (key: string) => ({ ...((settings[key] as Record<string, unknown> | undefined) ?? {}) });
  checkScopeFlags(kind, flags);
  if (flags.url !== undefined) settings['url'] = flags.url;
  if (flags.bindDn !== undefined) settings['bindDn'] = flags.bindDn;
  if (flags.base) settings['baseDns'] = flags.base;
  if (flags.filter !== undefined) settings['filter'] = flags.filter;
  if (flags.excludeFilter !== undefined) settings['excludeFilter'] = flags.excludeFilter;
  if (flags.objectTypes !== undefined) settings['objectTypes'] = flags.objectTypes.split(',').map((type) => type.trim()).filter((type) => type !== '');
  if (flags.usersBase || flags.usersFilter !== undefined) {
    const users = section('users');
    if (flags.usersBase) users['baseDns'] = flags.usersBase;
    if (flags.usersFilter !== undefined) users['filter'] = flags.usersFilter;
    settings['users'] = users;
  }
  if (flags.groupsBase || flags.groupsFilter !== undefined) {
    const groups = section('groups');
    if (flags.groupsBase) groups['baseDns'] = flags.groupsBase;
    if (flags.groupsFilter !== undefined) groups['filter'] = flags.groupsFilter;
    settings['groups'] = groups;
  }
  if (kind === 'entra_id') {
    if (flags.tenant !== undefined) settings['tenantId'] = flags.tenant;
    if (flags.connector !== undefined) settings['connectorId'] = flags.connector;
    if (flags.legacyClientId !== undefined) settings['legacyApp'] = { clientId: flags.legacyClientId };
    if (flags.authorityHost !== undefined) settings['authorityHost'] = flags.authorityHost;
    if (flags.graphUrl !== undefined) settings['graphBaseUrl'] = flags.graphUrl;
    if (flags.caFile !== undefined) settings['caPem'] = await readCaFile(flags.caFile);
  } else if (flags.tlsMode !== undefined || flags.caFile !== undefined || flags.allowInsecure !== undefined) {
    const tls = section('tls');
    if (flags.tlsMode !== undefined) tls['mode'] = flags.tlsMode;
    if (flags.allowInsecure !== undefined) tls['allowInsecure'] = flags.allowInsecure;
    if (flags.caFile !== undefined) tls['caPem'] = await readCaFile(flags.caFile);
    settings['tls'] = tls;
  }
  const pageSize = integer('--page-size', flags.pageSize);
  if (pageSize !== undefined) settings['pageSize'] = pageSize;
  const validation = validateSettings(kind, settings);
  if (!validation.ok) throw new UsageError(`invalid ${kind} settings:\n  - ${validation.problems.join('\n  - ')}`);
  return validation.settings as Record<string, unknown>;
}

/** Schedule and threshold flags, validated. */
function buildSchedule(flags: SettingsFlags): IntegrationPatch {
  const schedule = validateSchedule({
    ...(flags.deltaCron !== undefined ? { deltaCron: flags.deltaCron } : {}),
    ...(flags.fullCron !== undefined ? { fullCron: flags.fullCron } : {}),
  });
  if (!schedule.ok) throw new UserError(schedule.message);
  const count = integer('--threshold-count', flags.thresholdCount);
  const percent = integer('--threshold-percent', flags.thresholdPercent);
  if (percent !== undefined && percent > 100) throw new UsageError('--threshold-percent must be between 0 and 100');
  return {
    ...(schedule.deltaCron !== undefined ? { deltaCron: schedule.deltaCron } : {}),
    ...(schedule.fullCron !== undefined ? { fullCron: schedule.fullCron } : {}),
    ...(count !== undefined ? { deleteThresholdCount: count } : {}),
    ...(percent !== undefined ? { deleteThresholdPercent: percent } : {}),
    ...(flags.description !== undefined ? { description: flags.description } : {}),
  };
}

/**
 * Runs the settings and the schedule checks both, so that one attempt lists every problem to fix
 * (each check's own problems stay one line each).
 */
async function checkSettingsAndSchedule(settings: () => Promise<Record<string, unknown>>, flags: SettingsFlags) {
  const [checked, schedule] = await Promise.allSettled([settings(), Promise.resolve().then(() => buildSchedule(flags))]);
  const failures = [checked, schedule].flatMap((result) => (result.status === 'rejected' ? [result.reason as unknown] : []));
  const unexpected = failures.find((failure) => !(failure instanceof UserError));
  if (unexpected !== undefined) throw unexpected;
  if (failures.length > 0) {
    const problems = failures as UserError[];
    throw new UserError(problems.map((failure) => failure.message).join('\n'), problems[0]!.exitCode);
  }
  return {
    settings: (checked as PromiseFulfilledResult<Record<string, unknown>>).value,
    schedule: (schedule as PromiseFulfilledResult<IntegrationPatch>).value,
  };
}

/**
 * Refuses an `entra_id` integration on a connector whose account holds no granted consent of
 * the tenant: an integration may use a tenant only through its own account's consent.
 */
export async function requireAccountConsent(ctx: Context, accountId: string, kind: string, settings: Record<string, unknown>): Promise<void> {
  const connectorId = settings['connectorId'];
  const tenant = settings['tenantId'];
  if (kind !== 'entra_id' || typeof connectorId !== 'string' || typeof tenant !== 'string') return;
  if (await hasGrantedConsent(ctx.db(), accountId, connectorId, tenant)) return;
  const name = (await getConnector(ctx.db(), connectorId))?.name ?? connectorId;
  throw new UserError(
    `the account holds no granted consent of tenant ${tenant} to connector "${name}": an Entra ID integration may use a tenant only through its own account's consent (dirsync connectors consent-url ${name} --account <account> --tenant ${tenant}, then have the tenant's administrator grant it)`,
  );
}

/** Longest check detail printed: room for dirsync's own words around a server's capped text. */
const detailDisplayLimit = 1000;

/**
 * Prints a Test Connection report as a checklist. Details quote the directory server, and the
 * report may come from another process: what reaches the terminal passes the display sanitiser.
 */
export function formatConnectionReport(report: ConnectionReport & { samples?: readonly MappedSample[] }): string {
  const lines = report.checks.map((c) => `${c.ok ? (c.warning ? '!' : '✓') : '✗'} ${displayText(c.name, 100)}: ${displayText(c.detail, detailDisplayLimit)}`);
  // The verdict stays the last line (scripts read it): the samples come before it.
  if (report.samples !== undefined && report.samples.length > 0) lines.push('mapped samples:', ...formatSamples(report.samples));
  lines.push(report.ok ? 'connection OK' : 'connection FAILED');
  return lines.join('\n');
}

/** Longest sample line printed (the whole object with `--json`). */
const sampleDisplayLimit = 2000;

/** Mapped samples, one line each, directory text through the display sanitiser. */
export function formatSamples(samples: readonly MappedSample[]): string[] {
  return samples.map((s) => `  ${s.type} ${displayText(s.externalId, 100)}: ${displayText(JSON.stringify({ attributes: s.attributes, extra: s.extra }), sampleDisplayLimit)}`);
}

/**
 * Runs Test Connection for an integration in this process, with the stored secret or a
 * candidate one (`set-password` tests the new password before storing it).
 */
export async function testIntegrationConnection(
  ctx: Context,
  integration: Integration,
  candidateSecret?: string,
): Promise<ConnectionReport & { samples?: MappedSample[] }> {
  // Entra ID integrations on a connector need its certificate: the worker's factory loads it.
  const { createEntraAwareProviderFactory, withMappedSamples } = await workerPackage();
  const factory = createEntraAwareProviderFactory({ db: ctx.db(), keyRing: ctx.keyRing(), destinations: ctx.destinations() });
  const run = async (secret: string | undefined) => {
    const provider = await factory(integration.kind, integration.settings, secret, { accountId: integration.accountId, integrationId: integration.id });
    try {
      const signal = AbortSignal.timeout(60_000);
      const report = await provider.testConnection(signal);
      // A new password's check needs no samples; a passed test shows what a sync will store,
      // with the mapping warning a worker's Test Connection gives.
      if (!report.ok || candidateSecret !== undefined) return report;
      const sampled = await withMappedSamples(provider, report.checks, signal);
      const checks = sampled.checks.map(({ warning, ...check }) => (warning === undefined ? check : { ...check, warning }));
      return sampled.samples === undefined ? { ok: sampled.ok, checks } : { ok: sampled.ok, checks, samples: sampled.samples };
    } finally {
      await provider.close();
    }
  };
  if (candidateSecret !== undefined) return run(candidateSecret);
  return withIntegrationSecret(ctx.db(), ctx.keyRing(), integration.id, run);
}

/**
 * Maps the first `limit` entries of an integration's directory in this process, with
 * `attributeMapping` in place of the stored one when given (checked like the settings first).
 */
export async function previewIntegration(ctx: Context, integration: Integration, limit: number, attributeMapping?: unknown): Promise<PreviewResult> {
  let settings = integration.settings;
  if (attributeMapping !== undefined) {
    const checked = validateSettings(integration.kind, { ...integration.settings, attributeMapping });
    if (!checked.ok) throw new UserError(`invalid attribute mapping:\n  ${checked.problems.join('\n  ')}`);
    settings = checked.settings as Record<string, unknown>;
  }
  const { createEntraAwareProviderFactory } = await workerPackage();
  const factory = createEntraAwareProviderFactory({ db: ctx.db(), keyRing: ctx.keyRing(), destinations: ctx.destinations() });
  return withIntegrationSecret(ctx.db(), ctx.keyRing(), integration.id, async (secret) => {
    const provider = await factory(integration.kind, settings, secret, { accountId: integration.accountId, integrationId: integration.id });
    try {
      return await previewProvider(provider, limit, AbortSignal.timeout(60_000));
    } finally {
      await provider.close();
    }
  });
}

/**
 * What `integrations add --help` says after the flags: the kind-specific settings a
 * `--settings-file` holds (the README's "Directory kinds" section has an example of each).
 */
export const addSettingsHelp = `
Kind-specific settings go in --settings-file or --settings (JSON; flags are merged over them).
Examples of each kind: README.md, section "Directory kinds".

Scope: ldap and domino have bases and filters per type (--users-base, --groups-base, repeatable,
--users-filter, --groups-filter); active_directory reads users, groups and contacts under one list
of bases (--base, repeatable, --filter, --exclude-filter, --object-types user,group,contact).

Domino (--kind domino), besides url, bindDn, tls, users and groups:
  paging                "auto" (default): page when the root DSE offers paged results, else split
                        searches; "never": always split
  splitAttribute        attribute whose leading characters split a search the server's answer cap
                        (LDAPMaxEntriesReturned) cuts short (default "cn")
  deltaMethod           "auto" (default): deltas read entries with a newer modifyTimestamp when the
                        server shows it, else everything, writing only changes; "hash": always that
  deltaOverlapSeconds   how far before the last modifyTimestamp a delta reads again (default 300)
  limits.maxMessageMiB  largest LDAP message accepted (default 64, at most 256)
  pageSize              entries per page when the server pages (default 500)
  users.objectClasses   default ["dominoPerson"]; groups.objectClasses default ["dominoGroup"]
  groups.memberAttributes  default ["member"]
  users.scope, groups.scope  "one" (entries directly under each base) or "sub" (default); a base
                        may be "" (the directory root, where Domino keeps groups), read "one" level
                        deep by default ("sub" with the root is refused: it reads everything)
Attributes read for people: ${dominoPersonAttributes.join(', ')}
Attributes read for groups: ${dominoGroupAttributes.join(', ')} and the member attributes
Example: --kind domino --url ldaps://domino.acme.example --bind-dn "CN=dirsync reader,O=Acme"
  --users-base O=Acme --groups-base O=Acme --settings '{"paging":"never","splitAttribute":"cn"}'
`;

/** `dirsync integrations …`. */
export function registerIntegrationCommands(program: Command, withContext: WithContext): void {
  const integrations = program.command('integrations').description('directory integrations of accounts');

  addSettingsOptions(
    integrations
      .command('add')
      .description('create an integration (the service-account password is read from stdin, DIRSYNC_INTEGRATION_SECRET or a prompt)')
      .requiredOption('--account <account>', 'account id or name')
      .requiredOption('--kind <kind>', `directory kind (${integrationKinds.join(', ')})`)
      .requiredOption('--name <name>', 'name shown to administrators')
      .option('--password-stdin', 'read the password from standard input')
      .option('--no-password', 'store no password (anonymous bind)')
      .option('--disabled', 'create it disabled (no scheduled syncs)')
      .addHelpText('after', addSettingsHelp),
  ).action((flags: SettingsFlags & { account: string; kind: string; name: string; passwordStdin?: boolean; password: boolean; disabled?: boolean }) =>
    withContext(async (ctx) => {
      if (!(integrationKinds as readonly string[]).includes(flags.kind)) {
        throw new UsageError(`unknown kind "${flags.kind}": use one of ${integrationKinds.join(', ')}`);
      }
      const account = await getAccount(ctx.db(), flags.account);
      if (!account) throw new NotFoundError(`no account "${flags.account}" (create it with \`dirsync accounts add\`)`);
      const connector = flags.connector === undefined ? undefined : await requireConnector(ctx.db(), flags.connector);
      const { settings, schedule } = await checkSettingsAndSchedule(
        () => buildSettings(flags.kind, {}, { ...flags, ...(connector ? { connector: connector.id } : {}) }),
        flags,
      );
      await requireAccountConsent(ctx, account.id, flags.kind, settings);
      // A connector integration has no secret of its own: it uses the connector's certificate.
      const secret =
        flags.password && connector === undefined
          ? await readSecret({
              stdin: Boolean(flags.passwordStdin),
              env: ctx.config.DIRSYNC_INTEGRATION_SECRET,
              prompt: flags.kind === 'entra_id' ? 'client secret of the app registration: ' : 'service account password: ',
            })
          : undefined;
      const integration = await createIntegration(
        ctx.db(),
        { accountId: account.id, kind: flags.kind as IntegrationKind, name: flags.name, settings, enabled: !flags.disabled, ...schedule },
        secret === undefined ? undefined : { ring: ctx.keyRing(), plaintext: secret },
      );
      await recordAudit(ctx.db(), { accountId: account.id, integrationId: integration.id, actor: 'cli', action: 'integration.created', details: { name: flags.name, kind: flags.kind } });
      console.log(integration.id);
      if (settings['legacyApp'] !== undefined) {
        console.error('this is a legacy integration (own app registration and client secret): migrate it to a connector (dirsync integrations migrate)');
      }
    }),
  );

  integrations
    .command('list')
    .description('list integrations')
    .option('--account <account>', 'only this account (id or name)')
    .option('--json', 'print JSON: { "items": [integration] }, each as GET /v1/integrations/{id} answers it')
    .action((flags: { account?: string; json?: boolean }) =>
      withContext(async (ctx) => {
        let accountId: string | undefined;
        if (flags.account) {
          const account = await getAccount(ctx.db(), flags.account);
          if (!account) throw new NotFoundError(`no account "${flags.account}"`);
          accountId = account.id;
        }
        const rows = await listIntegrations(ctx.db(), accountId ? { accountId } : {});
        if (flags.json) {
          printJson(z.object({ items: z.array(integrationSchema) }), { items: await presentIntegrations(ctx, rows) });
          return;
        }
        console.log(
          table(
            ['id', 'account', 'kind', 'name', 'enabled', 'status', 'last success'],
            rows.map((i) => [i.id, i.accountId, i.kind, i.name, i.enabled ? 'yes' : 'no', i.status, i.lastSuccessAt]),
          ),
        );
      }),
    );

  integrations
    .command('show <integration>')
    .description('show an integration, its settings (never its secret) and its last run')
    .option('--json', 'print JSON: the integration as GET /v1/integrations/{id} answers it')
    .action((id: string, flags: { json?: boolean }) =>
      withContext(async (ctx) => {
        const i = await requireIntegration(ctx.db(), id);
        if (flags.json) {
          const [presented] = await presentIntegrations(ctx, [i]);
          printJson(integrationSchema, presented);
          return;
        }
        console.log(
          keyValues([
            ['id', i.id],
            ['account', i.accountId],
            ['kind', i.kind],
            ['name', i.name],
            ['description', i.description],
            ['enabled', i.enabled ? 'yes' : 'no'],
            ['status', i.status],
            ['password', i.hasSecret ? 'set (encrypted)' : 'not set'],
            ['delta schedule', i.deltaCron],
            ['full schedule', i.fullCron],
            ['deletion threshold', `${i.deleteThresholdCount} objects or ${i.deleteThresholdPercent}%`],
            ['delta cursor', i.cursor ? JSON.stringify(i.cursor) : 'none (next delta runs full)'],
            ['last success', i.lastSuccessAt],
          ]),
        );
        console.log(`\nsettings:\n${JSON.stringify(i.settings, null, 2)}`);
        if (i.lastRunId) {
          const run = await getRun(ctx.db(), i.lastRunId);
          if (run) console.log(`\nlast run:\n${describeRun(run)}`);
        }
      }),
    );

  addSettingsOptions(
    integrations
      .command('update <integration>')
      .description('change settings, schedule or thresholds (the password: `set-password`)')
      .option('--name <name>', 'new name')
      .option('--enable', 'enable scheduled syncs')
      .option('--disable', 'disable scheduled syncs'),
  ).action((id: string, flags: SettingsFlags & { name?: string; enable?: boolean; disable?: boolean }) =>
    withContext(async (ctx) => {
      if (flags.enable && flags.disable) throw new UsageError('choose one of --enable and --disable');
      const current = await requireIntegration(ctx.db(), id);
      const touchesSettings = Object.keys(flags).some((k) =>
        ['settings', 'settingsFile', 'url', 'bindDn', 'usersBase', 'groupsBase', 'usersFilter', 'groupsFilter', 'base', 'filter', 'excludeFilter', 'objectTypes', 'tlsMode', 'caFile', 'allowInsecure', 'pageSize', 'tenant', 'legacyClientId', 'authorityHost', 'graphUrl'].includes(k),
      );
      const checked = await checkSettingsAndSchedule(
        async () => (touchesSettings ? buildSettings(current.kind, current.settings, flags) : current.settings),
        flags,
      );
      if (touchesSettings) await requireAccountConsent(ctx, current.accountId, current.kind, checked.settings);
      const patch: IntegrationPatch = {
        ...checked.schedule,
        ...(touchesSettings ? { settings: checked.settings } : {}),
        ...(flags.name !== undefined ? { name: flags.name } : {}),
        ...(flags.enable ? { enabled: true } : {}),
        ...(flags.disable ? { enabled: false } : {}),
      };
      if (Object.keys(patch).length === 0) throw new UsageError('nothing to change: pass at least one option');
      await updateIntegration(ctx.db(), id, patch);
      await recordAudit(ctx.db(), { accountId: current.accountId, integrationId: id, actor: 'cli', action: 'integration.updated', details: { fields: Object.keys(patch) } });
      console.log('updated');
    }),
  );

  integrations
    .command('remove <integration>')
    .description('delete an integration and everything synced for it')
    .option('--yes', 'confirm')
    .action((id: string, flags: { yes?: boolean }) =>
      withContext(async (ctx) => {
        const current = await requireIntegration(ctx.db(), id);
        if (!flags.yes) throw new UsageError(`this deletes "${current.name}" and all its synced objects: repeat with --yes`);
        await removeIntegration(ctx.db(), id);
        await recordAudit(ctx.db(), { accountId: current.accountId, actor: 'cli', action: 'integration.removed', details: { integrationId: id, name: current.name } });
        console.log('removed');
      }),
    );

  integrations
    .command('test <integration>')
    .description('Test Connection: connect, TLS, bind, and read the configured bases')
    .option('--json', 'print JSON: { "ok", "checks": [{ "name", "ok", "detail", "warning"? }], "samples"? }')
    .action((id: string, flags: { json?: boolean }) =>
      withContext(async (ctx) => {
        const integration = await requireIntegration(ctx.db(), id);
        const report = await testIntegrationConnection(ctx, integration);
        if (flags.json) printJson(connectionReportSchema, report);
        else console.log(formatConnectionReport(report));
        if (!report.ok) process.exitCode = exitCodes.failed;
      }),
    );

  integrations
    .command('preview <integration>')
    .description('map the first entries of the directory with the stored attribute mapping, or the one in --mapping-file (not stored)')
    .option('--mapping-file <file>', 'JSON attribute mapping to try (settings.attributeMapping)')
    .option('--limit <n>', 'entries to map (1-20)', '5')
    .option('--json', 'print the preview as JSON')
    .action((id: string, flags: { mappingFile?: string; limit: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const integration = await requireIntegration(ctx.db(), id);
        const limit = Number(flags.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 20) throw new UsageError('--limit must be a whole number from 1 to 20');
        const preview = await previewIntegration(ctx, integration, limit, flags.mappingFile === undefined ? undefined : await readJsonFile(flags.mappingFile));
        if (flags.json) {
          console.log(safeJson(preview));
          return;
        }
        console.log([...formatSamples(preview.samples), ...preview.problems.map((p) => `  ! ${displayText(p.externalId ?? p.dn ?? '?', 200)}: ${displayText(p.reason, detailDisplayLimit)}`)].join('\n'));
      }),
    );

  integrations
    .command('set-password <integration>')
    .description('replace the service-account password: tests it first, stores it encrypted, then runs a full sync ("Sync All")')
    .option('--password-stdin', 'read the password from standard input')
    .option('--wait', 'wait for the full sync and print its report')
    .option('--json', 'print JSON as PUT /v1/integrations/{id}/secret answers: { "connection", "sync" }, sync with "run" under --wait')
    .action((id: string, flags: { passwordStdin?: boolean; wait?: boolean; json?: boolean }) =>
      withContext(async (ctx) => {
        const integration = await requireIntegration(ctx.db(), id);
        const secret = await readSecret({ stdin: Boolean(flags.passwordStdin), env: ctx.config.DIRSYNC_INTEGRATION_SECRET, prompt: 'new service account password: ' });
        const report = await testIntegrationConnection(ctx, integration, secret);
        if (!report.ok) {
          // The outcome is printed before the refusal: the checklist says what to fix.
          if (flags.json) printJson(passwordAnswerSchema, { connection: report, sync: null });
          else console.log(formatConnectionReport(report));
          throw new UserError('the new password was not stored: Test Connection failed (the old password stays in use)');
        }
        await setIntegrationSecret(ctx.db(), ctx.keyRing(), id, secret);
        await recordAudit(ctx.db(), { accountId: integration.accountId, integrationId: id, actor: 'cli', action: 'integration.password_updated', details: {} });
        const job = await requestIntegrationSync(ctx, { integrationId: id, mode: 'full', trigger: 'password_update', dryRun: false, requestedBy: 'cli' });
        if (!flags.json) console.log(`password stored; full sync queued: run ${job.runId}`);
        const run = flags.wait ? await waitForRun(ctx, job.runId, job.jobId, { quiet: Boolean(flags.json) }) : undefined;
        if (flags.json) {
          const current = run ?? (await getRun(ctx.db(), job.runId));
          printJson(passwordAnswerSchema, { connection: report, sync: { ...job, ...(current ? { run: await presentRunOf(current) } : {}) } });
        } else if (run) {
          console.log(describeRun(run));
        }
        if (run) process.exitCode = exitCodeOfRun(run);
      }),
    );

  integrations
    .command('migrate <integration>')
    .description('move a legacy Entra ID integration to a connector (after the tenant\'s consent); the next run is a full sync')
    .requiredOption('--connector <connector>', 'connector (id or name)')
    .requiredOption('--description <text>', 'description of the migrated integration (required; the name is carried over)')
    .option('--no-sync', 'do not queue the full sync now (the next run is a full sync anyway)')
    .option('--json', 'print JSON as POST /v1/integrations/{id}/migrate answers: the integration with "legacyClientId", "tenantId" and "sync" (null with --no-sync)')
    .action((id: string, flags: { connector: string; description: string; sync: boolean; json?: boolean }) =>
      withContext(async (ctx) => {
        const result = await migrateLegacyIntegration(ctx.db(), { integrationId: id, connectorId: flags.connector, description: flags.description, actor: 'cli' });
        const connector = await requireConnector(ctx.db(), result.connectorId);
        const migrated = await requireIntegration(ctx.db(), result.integrationId);
        // As over the API: a disabled integration gets no sync now (its next run is full anyway).
        const job = flags.sync && migrated.enabled
          ? await requestIntegrationSync(ctx, { integrationId: result.integrationId, mode: 'full', trigger: 'manual', dryRun: false, requestedBy: 'cli' })
          : null;
        if (flags.json) {
          const [presented] = await presentIntegrations(ctx, [migrated]);
          printJson(migratedIntegrationSchema, { ...presented, legacyClientId: result.legacyClientId, tenantId: result.tenantId, sync: job });
          return;
        }
        console.log(
          keyValues([
            ['integration', `${result.name} (${result.integrationId}), name carried over`],
            ['description', flags.description.trim()],
            ['connector', `${connector.name} (${connector.clientId})`],
            ['tenant', result.tenantId],
            ['old client secret', 'erased'],
          ]),
        );
        console.log(job ? `full sync queued: run ${job.runId}` : 'the next run of this integration is a full sync');
        console.log(`\nreminder: delete the old app registration ${result.legacyClientId} from tenant ${result.tenantId}: dirsync no longer uses it`);
      }),
    );
}
