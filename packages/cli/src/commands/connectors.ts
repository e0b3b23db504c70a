import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import {
  acceptConsentRedirect,
  confirmConsent,
  consentErrorAnswer,
  createConnector,
  createConsentRequest,
  type Connector,
  type ConnectorCloud,
  type Db,
  displayText,
  getAccount,
  listConnectorCredentials,
  listConnectors,
  listConsents,
  recordAudit,
  requireConnector,
  revokeConsent,
  setCredentialGraphKeyId,
  updateConnector,
} from '@dirsync/db';
import { validateCron } from '@dirsync/jobs/settings';
import { connectorSchema, consentStatuses, consentUrlSchema } from '@dirsync/contracts';
import { z } from 'zod';
import { entraCloud, entraClouds, generateCertificate, httpsBaseUrl, isGuid, pemCertificates } from '@dirsync/providers';
import { COMMAND_QUEUE_WAIT_MS, type Context } from '../context.ts';
import { UserError, UsageError, NotFoundError } from '../errors.ts';
import { keyValues, printJson, table } from '../format.ts';
import { apiPackage, jobsPackage, workerPackage } from '../packages.ts';

/** A connector as the platform sees it with `--json`: the API's shape without one account's "tenants". */
const platformConnectorSchema = connectorSchema.omit({ tenants: true });

/**
 * `connectors rotate --json` (no API route rotates): what the rotation did, or the job queued
 * for a worker with `--queue`. Certificates by thumbprint only, never a key.
 */
export const rotationJsonSchema = z.discriminatedUnion('status', [
  z.object({
    status: z.literal('rotated'),
    connectorId: z.uuid(),
    thumbprint: z.string(),
    keyId: z.string(),
    notAfter: z.iso.datetime({ offset: true }),
    removed: z.array(z.string()).describe('thumbprints of old certificates removed from the app registration'),
    removalErrors: z.array(z.string()).describe('old certificates not removed yet (the next rotation tries again)'),
  }),
  z.object({ status: z.literal('skipped'), connectorId: z.uuid(), reason: z.string() }),
  z.object({ status: z.literal('queued'), connectorId: z.uuid(), jobId: z.string() }),
]);

/** One account's consent of a tenant on a connector (`connectors show --json`). */
const platformConsentSchema = z.object({
  accountId: z.uuid(),
  tenantId: z.string(),
  tenantGuid: z.string().nullable(),
  status: z.enum(consentStatuses),
  grantedAt: z.iso.datetime({ offset: true }).nullable(),
  error: z.string().nullable(),
  errorDescription: z.string().nullable(),
});

/** A connector in the API's shape (public facts and certificate history only, never a key). */
async function presentConnector(ctx: Context, connector: Connector) {
  const { presentConnectorFacts } = await apiPackage();
  return presentConnectorFacts(connector, await listConnectorCredentials(ctx.db(), connector.id), new Date());
}
import { redisSettingsOf } from '../config.ts';

type WithContext = (run: (ctx: Context) => Promise<void>) => Promise<void>;

async function requireAccount(ctx: Context, idOrName: string) {
  const account = await getAccount(ctx.db(), idOrName);
  if (!account) throw new NotFoundError(`no account "${idOrName}"`);
  return account;
}

/** Flags of `connectors add`. */
interface AddFlags {
  name: string;
  description: string;
  clientId: string;
  objectId: string;
  homeTenant: string;
  redirectUri: string;
  cloud?: string;
  authorityHost?: string;
  graphUrl?: string;
  caFile?: string;
  rotationCron?: string;
  validityDays?: string;
  certificateOut?: string;
}

function guid(flag: string, value: string): string {
  if (!isGuid(value)) throw new UsageError(`${flag} must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`);
  return value.toLowerCase();
}

function httpsUrl(flag: string, value: string): string {
  const parsed = httpsBaseUrl(flag).safeParse(value);
  if (!parsed.success) throw new UserError(parsed.error.issues.map((i) => i.message).join('; '));
  return parsed.data;
}

/** Entra ID accepts https:// redirect URIs, and http:// only for localhost. */
function redirectUrl(flag: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UserError(`${flag} is not a valid URL`);
  }
  const local = url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !local) throw new UsageError(`${flag} must be an https:// URL (http:// only for localhost)`);
  // Kept as typed: Entra ID compares redirect URIs exactly.
  return value;
}

function validityDays(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 2 || n > 730) throw new UsageError('--validity-days must be a whole number of days between 2 and 730');
  return n;
}

function rotationCron(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const checked = validateCron(value);
  if (!checked.ok) throw new UsageError(`--rotation-cron: ${checked.message}`);
  return checked.expression;
}

async function caFile(path: string | undefined): Promise<string | undefined> {
  if (path === undefined) return undefined;
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (error) {
    throw new UserError(`cannot read --ca-file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  const checked = pemCertificates('--ca-file').safeParse(pem);
  if (!checked.success) throw new UserError(checked.error.issues.map((i) => i.message).join('; '));
  return pem;
}

/**
 * The hosts of `--cloud` (default global), each replaced by its own flag when given (private
 * endpoints): the cloud is then recorded as `custom` unless both hosts are still that cloud's.
 */
function cloudHosts(flags: Pick<AddFlags, 'cloud' | 'authorityHost' | 'graphUrl'>): { cloud: ConnectorCloud; authorityHost: string; graphBaseUrl: string } {
  const name = flags.cloud ?? 'global';
  let hosts;
  try {
    hosts = entraCloud(name);
  } catch {
    throw new UsageError(`--cloud must be one of ${Object.keys(entraClouds).join(', ')}`);
  }
  const authorityHost = flags.authorityHost === undefined ? hosts.authorityHost : httpsUrl('--authority-host', flags.authorityHost);
  const graphBaseUrl = flags.graphUrl === undefined ? hosts.graphBaseUrl : httpsUrl('--graph-url', flags.graphUrl);
  const named = authorityHost === hosts.authorityHost && graphBaseUrl === hosts.graphBaseUrl;
  return { cloud: named ? (name as ConnectorCloud) : 'custom', authorityHost, graphBaseUrl };
}

async function currentCertificate(db: Db, connector: Connector) {
  return (await listConnectorCredentials(db, connector.id)).find((c) => c.status === 'current');
}

/** `dirsync connectors …`: the platform's Entra app registrations, their certificates and consents. */
export function registerConnectorCommands(program: Command, withContext: WithContext): void {
  const connectors = program.command('connectors').description('Microsoft Entra ID connectors (app registrations with a rotating certificate)');

  connectors
    .command('add')
    .description('register a connector: generates its first certificate (the private key is stored encrypted, never shown)')
    .requiredOption('--name <name>', 'name shown to administrators')
    .requiredOption('--description <text>', 'what the connector is for (required)')
    .requiredOption('--client-id <guid>', 'application (client) id of the app registration')
    .requiredOption('--object-id <guid>', 'object id of the app registration (it rolls its own keys)')
    .requiredOption('--home-tenant <guid>', 'tenant the app registration lives in')
    .requiredOption('--redirect-uri <url>', 'where the admin-consent page sends administrators back')
    .option('--cloud <cloud>', `the Microsoft cloud of the app registration: ${Object.keys(entraClouds).join('|')} (default global); sets the token authority and Microsoft Graph`)
    .option('--authority-host <url>', `token authority, instead of the cloud's (private endpoints; global: ${entraClouds.global.authorityHost})`)
    .option('--graph-url <url>', `Microsoft Graph, instead of the cloud's (private endpoints; global: ${entraClouds.global.graphBaseUrl})`)
    .option('--ca-file <path>', 'PEM of an extra CA to trust for this connector\'s authority and Graph only')
    .option('--rotation-cron <cron>', 'when the certificate rotates (default daily at 03:00 UTC)')
    .option('--validity-days <n>', 'validity of each certificate (default 30)')
    .option('--certificate-out <path>', 'also write the public certificate (PEM) to this file')
    .action((flags: AddFlags) =>
      withContext(async (ctx) => {
        const days = validityDays(flags.validityDays) ?? 30;
        const certificate = await generateCertificate({ subject: `dirsync connector ${flags.name}`, validityDays: days });
        const connector = await createConnector(
          ctx.db(),
          ctx.keyRing(),
          {
            name: flags.name,
            description: flags.description,
            clientId: guid('--client-id', flags.clientId),
            applicationObjectId: guid('--object-id', flags.objectId),
            homeTenantId: guid('--home-tenant', flags.homeTenant),
            redirectUri: redirectUrl('--redirect-uri', flags.redirectUri),
            ...cloudHosts(flags),
            ...(flags.caFile === undefined ? {} : { tlsCaPem: (await caFile(flags.caFile)) ?? null }),
            ...(flags.rotationCron === undefined ? {} : { rotationCron: rotationCron(flags.rotationCron) as string }),
            certificateValidityDays: days,
          },
          certificate,
        );
        await recordAudit(ctx.db(), {
          actor: 'cli',
          action: 'connector.created',
          details: { connectorId: connector.id, name: connector.name, clientId: connector.clientId, thumbprint: certificate.thumbprint },
        });
        if (flags.certificateOut !== undefined) await writeFile(flags.certificateOut, certificate.certificatePem, { mode: 0o644 });
        console.log(
          keyValues([
            ['connector', connector.id],
            ['name', connector.name],
            ['certificate', `${certificate.thumbprint} (valid until ${certificate.notAfter.toISOString().slice(0, 10)})`],
          ]),
        );
        console.log(`\nUpload this certificate to the app registration ${connector.clientId} (Certificates & secrets); later ones are rotated in by dirsync:\n`);
        console.log(certificate.certificatePem.trimEnd());
        console.log(
          `\nThen record the Certificate ID the app registration shows for it, so that the rotation can remove it later without reading the app registration:\n  dirsync connectors set-key-id ${connector.name} <certificate id>`,
        );
      }),
    );

  connectors
    .command('list')
    .description('list connectors with their current certificate and last rotation')
    .option('--json', 'print JSON: { "items": [connector] }, each as GET /v1/connectors/{id} answers it, without "tenants"')
    .action((flags: { json?: boolean }) =>
      withContext(async (ctx) => {
        if (flags.json) {
          const items = [];
          for (const c of await listConnectors(ctx.db())) items.push(await presentConnector(ctx, c));
          printJson(z.object({ items: z.array(platformConnectorSchema) }), { items });
          return;
        }
        const rows = [];
        for (const c of await listConnectors(ctx.db())) {
          const current = await currentCertificate(ctx.db(), c);
          rows.push([c.id, c.name, c.clientId, current?.thumbprint ?? 'none', current?.notAfter, c.lastRotationAt, c.lastRotationStatus ?? '']);
        }
        console.log(table(['id', 'name', 'client id', 'certificate', 'expires', 'last rotation', 'status'], rows));
      }),
    );

  connectors
    .command('show <connector>')
    .description('a connector, its certificate history and its tenants\' consents (never a private key)')
    .option('--json', 'print JSON: the connector as GET /v1/connectors/{id} answers it, with every account\'s "consents" instead of "tenants"')
    .action((idOrName: string, flags: { json?: boolean }) =>
      withContext(async (ctx) => {
        const c = await requireConnector(ctx.db(), idOrName);
        if (flags.json) {
          const consents = (await listConsents(ctx.db(), c.id)).map((x) => ({
            accountId: x.accountId,
            tenantId: x.tenantId,
            tenantGuid: x.tenantGuid,
            status: x.status,
            grantedAt: x.grantedAt,
            error: x.error,
            errorDescription: x.errorDescription === null ? null : displayText(x.errorDescription),
          }));
          printJson(platformConnectorSchema.extend({ consents: z.array(platformConsentSchema) }), { ...(await presentConnector(ctx, c)), consents });
          return;
        }
        console.log(
          keyValues([
            ['id', c.id],
            ['name', c.name],
            ['description', c.description],
            ['client id', c.clientId],
            ['object id', c.applicationObjectId],
            ['home tenant', c.homeTenantId],
            ['cloud', c.cloud],
            ['authority', c.authorityHost],
            ['graph', c.graphBaseUrl],
            ['extra CA', c.tlsCaPem ? 'configured' : 'none'],
            ['redirect URI', c.redirectUri],
            ['permissions', c.permissions.join(', ')],
            ['rotation', `${c.rotationCron} (certificates valid ${c.certificateValidityDays} days)`],
            ['last rotation', c.lastRotationAt ? `${c.lastRotationAt.toISOString()} ${c.lastRotationStatus ?? ''}` : 'never'],
            ...(c.lastRotationError ? ([['rotation error', c.lastRotationError]] as const) : []),
          ]),
        );
        const history = await listConnectorCredentials(ctx.db(), c.id);
        console.log('\ncertificates:');
        console.log(
          table(
            ['thumbprint', 'status', 'key id', 'valid from', 'valid until', 'created', 'removed'],
            history.map((h) => [h.thumbprint, h.status, h.graphKeyId ?? '', h.notBefore, h.notAfter, h.createdAt, h.removedAt]),
          ),
        );
        const consents = await listConsents(ctx.db(), c.id);
        console.log('\nconsents:');
        // Each account's consent is its own: the same tenant may appear once per account.
        console.log(
          table(
            ['account', 'tenant', 'status', 'granted', 'detail'],
            consents.map((x) => [
              x.accountId,
              x.tenantGuid && x.tenantGuid !== x.tenantId ? `${x.tenantId} (${x.tenantGuid})` : x.tenantId,
              x.status,
              x.grantedAt,
              displayText(x.errorDescription ?? x.error ?? ''),
            ]),
          ),
        );
      }),
    );

  connectors
    .command('update <connector>')
    .description('change the description, redirect URI, rotation schedule or certificate validity')
    .option('--description <text>', 'new description (not empty)')
    .option('--redirect-uri <url>', 'new redirect URI of the consent flow')
    .option('--rotation-cron <cron>', 'when the certificate rotates')
    .option('--validity-days <n>', 'validity of new certificates')
    .action((idOrName: string, flags: { description?: string; redirectUri?: string; rotationCron?: string; validityDays?: string }) =>
      withContext(async (ctx) => {
        const c = await requireConnector(ctx.db(), idOrName);
        const days = validityDays(flags.validityDays);
        const cron = rotationCron(flags.rotationCron);
        const patch = {
          ...(flags.description === undefined ? {} : { description: flags.description }),
          ...(flags.redirectUri === undefined ? {} : { redirectUri: redirectUrl('--redirect-uri', flags.redirectUri) }),
          ...(cron === undefined ? {} : { rotationCron: cron }),
          ...(days === undefined ? {} : { certificateValidityDays: days }),
        };
        if (Object.keys(patch).length === 0) throw new UsageError('nothing to change: pass at least one option');
        await updateConnector(ctx.db(), c.id, patch);
        await recordAudit(ctx.db(), { actor: 'cli', action: 'connector.updated', details: { connectorId: c.id, fields: Object.keys(patch) } });
        console.log('updated');
      }),
    );

  connectors
    .command('set-key-id <connector> <key-id>')
    .description(
      "record the key id (Certificate ID) the app registration shows for the connector's current certificate, uploaded by hand: the rotation removes old certificates by key id and never reads the app registration",
    )
    .action((idOrName: string, keyId: string) =>
      withContext(async (ctx) => {
        const c = await requireConnector(ctx.db(), idOrName);
        const id = guid('<key-id>', keyId);
        const current = await currentCertificate(ctx.db(), c);
        if (!current) throw new UserError(`connector "${c.name}" has no current certificate`);
        await setCredentialGraphKeyId(ctx.db(), current.id, id);
        await recordAudit(ctx.db(), { actor: 'cli', action: 'connector.credential.key_id_set', details: { connectorId: c.id, thumbprint: current.thumbprint, keyId: id } });
        console.log(`key id ${id} recorded for certificate ${current.thumbprint}`);
      }),
    );

  connectors
    .command('consent-url <connector>')
    .description("the admin-consent URL to send a tenant's administrator (single use, expires); the consent will be the account's own")
    .requiredOption('--account <account>', 'the account asking (id or name): only its integrations may use the consent')
    .requiredOption('--tenant <tenant>', "the customer's tenant (GUID or domain)")
    .option('--ttl-hours <n>', 'how long the URL can be used', '24')
    .option('--json', 'print JSON as POST /v1/connectors/{id}/consent-url answers: { "url", "expiresAt" }')
    .action((idOrName: string, flags: { account: string; tenant: string; ttlHours: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const hours = Number(flags.ttlHours);
        if (!Number.isFinite(hours) || hours <= 0 || hours > 24 * 30) throw new UsageError('--ttl-hours must be between 0 and 720');
        const c = await requireConnector(ctx.db(), idOrName);
        const account = await requireAccount(ctx, flags.account);
        const request = await createConsentRequest(ctx.db(), ctx.keyRing(), { accountId: account.id, connectorId: c.id, tenantId: flags.tenant, ttlMs: hours * 3600_000 });
        await recordAudit(ctx.db(), { accountId: account.id, actor: 'cli', action: 'connector.consent.requested', details: { connectorId: c.id, tenantId: request.tenantId } });
        if (flags.json) {
          printJson(consentUrlSchema, request);
          return;
        }
        console.log(request.url);
        console.error(`(valid until ${request.expiresAt.toISOString()}; the administrator grants ${c.permissions.join(', ')} to "${c.name}" for account "${account.name}")`);
      }),
    );

  connectors
    .command('consent-complete <redirect-url>')
    .description("record an answer of the consent flow (the whole URL the administrator was sent back to): after the admin-consent page it prints the sign-in URL the tenant's administrator must open next; after the sign-in it verifies the administrator and the tenant's token")
    .action((redirect: string) =>
      withContext(async (ctx) => {
        let url: URL;
        try {
          url = new URL(redirect);
        } catch {
          throw new UsageError('the argument must be the whole URL the consent page redirected to');
        }
        const refusal = consentErrorAnswer(url.searchParams);
        if (refusal && (url.searchParams.get('state') ?? '') === '') {
          // Microsoft sends some error answers without the state: no request is named, nothing is recorded.
          console.log(displayText(`consent not granted: ${refusal.error}${refusal.errorDescription === null ? '' : ` (${refusal.errorDescription})`}`));
          console.error('(the answer names no consent request, so nothing was recorded: create a new consent URL for the tenant\'s administrator)');
          process.exitCode = 1;
          return;
        }
        const answer = await acceptConsentRedirect(ctx.db(), ctx.keyRing(), url.searchParams);
        const { tenantId } = answer.request;
        if (answer.kind === 'refused') {
          const kept = answer.grantKept ? ' (the consent granted earlier stays in force)' : '';
          console.log(displayText(`consent refused by tenant ${tenantId}: ${answer.error} ${answer.errorDescription ?? ''}`.trimEnd()) + kept);
          process.exitCode = 1;
          return;
        }
        if (answer.kind === 'sign_in') {
          // The sign-in URL carries the request's second state: it goes to the administrator only.
          console.log(answer.url);
          console.error(
            `(the consent page's answer for tenant ${tenantId} is noted; a Global Administrator or Privileged Role Administrator of the tenant must now sign in at this URL, then run "dirsync connectors consent-complete" with the URL the sign-in redirects to)`,
          );
          return;
        }
        // This process sits above the worker package: it redeems the sign-in and asks the tenant
        // for a token itself.
        const { verifyTenantConsent } = await workerPackage();
        const outcome = await verifyTenantConsent(
          { db: ctx.db(), keyRing: ctx.keyRing(), destinations: ctx.destinations(), propagationWaitMs: ctx.config.DIRSYNC_CONSENT_PROPAGATION_WAIT_SECONDS * 1000 },
          answer.request.nonce,
        );
        if (outcome.outcome === 'granted') {
          console.log(`consent granted by tenant ${tenantId}${outcome.tenantGuid ? ` (${outcome.tenantGuid})` : ''}: its administrator signed in and the token carries the required permissions`);
          return;
        }
        console.log(displayText(`consent of tenant ${tenantId} not recorded as granted (${outcome.outcome}): ${outcome.detail ?? ''}`));
        process.exitCode = 1;
      }),
    );

  connectors
    .command('consent-confirm <connector>')
    .description("confirm an account's consent that waits for a platform administrator (the tenant had consented for another account first)")
    .requiredOption('--account <account>', 'account id or name')
    .requiredOption('--tenant <tenant>', 'the tenant as the consent was asked for')
    .action((idOrName: string, flags: { account: string; tenant: string }) =>
      withContext(async (ctx) => {
        const c = await requireConnector(ctx.db(), idOrName);
        const account = await requireAccount(ctx, flags.account);
        await confirmConsent(ctx.db(), { accountId: account.id, connectorId: c.id, tenantId: flags.tenant, actor: 'cli' });
        console.log(`consent of tenant ${flags.tenant.toLowerCase()} to "${c.name}" granted for account "${account.name}"`);
      }),
    );

  connectors
    .command('consent-revoke <connector>')
    .description("revoke an account's consent of a tenant (its integrations there stop syncing; other accounts' consents are not touched)")
    .requiredOption('--account <account>', 'account id or name')
    .requiredOption('--tenant <tenant>', 'the tenant as the consent was asked for')
    .action((idOrName: string, flags: { account: string; tenant: string }) =>
      withContext(async (ctx) => {
        const c = await requireConnector(ctx.db(), idOrName);
        const account = await requireAccount(ctx, flags.account);
        if (!(await revokeConsent(ctx.db(), { accountId: account.id, connectorId: c.id, tenantId: flags.tenant, actor: 'cli' }))) {
          throw new UserError(`account "${account.name}" holds no consent of tenant ${flags.tenant} to "${c.name}"`);
        }
        console.log('revoked');
      }),
    );

  connectors
    .command('rotate <connector>')
    .description('rotate the certificate now (the daily job, on demand): add a new key, switch to it, remove old ones')
    .option('--queue', 'enqueue the rotation job for a worker instead of running it here')
    .option('--json', 'print JSON: { "status": "rotated" | "skipped" | "queued", "connectorId", … }')
    .action((idOrName: string, flags: { queue?: boolean; json?: boolean }) =>
      withContext(async (ctx) => {
        const c = await requireConnector(ctx.db(), idOrName);
        if (flags.queue) {
          // Says the queue cannot be reached rather than wait for Redis for ever.
          const { createRotationEnqueueClient } = await jobsPackage();
          const client = createRotationEnqueueClient({ connection: redisSettingsOf(ctx.config), prefix: ctx.config.DIRSYNC_QUEUE_PREFIX, readyTimeoutMs: COMMAND_QUEUE_WAIT_MS });
          try {
            const job = await client.enqueueRotation({ connectorId: c.id, trigger: 'manual', requestedBy: 'cli' });
            if (flags.json) printJson(rotationJsonSchema, { status: 'queued', connectorId: c.id, jobId: job.jobId });
            else console.log(`rotation queued: job ${job.jobId}`);
          } finally {
            await client.close();
          }
          return;
        }
        const { rotateConnectorCredential } = await workerPackage();
        const result = await rotateConnectorCredential({ db: ctx.db(), keyRing: ctx.keyRing(), connectorId: c.id, actor: 'cli', destinations: ctx.destinations() });
        if (flags.json) {
          printJson(rotationJsonSchema, result);
          return;
        }
        if (result.status === 'skipped') {
          console.log(`nothing done: ${result.reason}`);
          return;
        }
        console.log(
          keyValues([
            ['connector', c.name],
            ['new certificate', `${result.thumbprint} (valid until ${result.notAfter.toISOString().slice(0, 10)})`],
            ['removed', result.removed.length > 0 ? result.removed.join(', ') : 'none (the previous certificate stays as the overlap)'],
            ...(result.removalErrors.length > 0 ? ([['not removed yet', result.removalErrors.join('; ')]] as const) : []),
          ]),
        );
      }),
    );
}
