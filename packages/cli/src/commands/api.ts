import type { Command } from 'commander';
import type { Logger } from 'pino';
import { z } from 'zod';
import { createApiKey, getAccount, listApiKeys, parseApiScopes, recordAudit, revokeApiKey } from '@dirsync/db';
import { entraCloud, generateCertificate, validateSettings } from '@dirsync/providers';
import type { ApiServer } from '@dirsync/api';
import type { Context } from '../context.ts';
import { serveOpsPort } from '../ops-server.ts';
import { UsageError, NotFoundError } from '../errors.ts';
import { printJson, table } from '../format.ts';

const isoDateTime = z.iso.datetime({ offset: true });

/** `api-keys list --json` (keys are managed here only: their own stable shape, never a token). */
const apiKeyListSchema = z.object({
  items: z.array(
    z.object({
      id: z.uuid(),
      accountId: z.uuid().nullable(),
      name: z.string(),
      scopes: z.array(z.string()),
      createdAt: isoDateTime,
      lastUsedAt: isoDateTime.nullable(),
      revokedAt: isoDateTime.nullable(),
    }),
  ),
});
import { consoleOidcOf, consoleUrlOf, redisSettingsOf } from '../config.ts';
import { apiPackage, consolePackage, schedulerPackage } from '../packages.ts';

type WithContext = (run: (ctx: Context) => Promise<void>) => Promise<void>;

/** Resolves on the first SIGTERM or SIGINT. */
function shutdownSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
}

/** The HTTP servers of an API process: the public API port and the internal operations port. */
export interface HttpServers {
  readonly server: ApiServer;
  /** Stops both (requests in flight on the API port finish first). */
  close(): Promise<void>;
}

/**
 * Starts the HTTP server on PORT from the context's configuration: the API (unless `serveApi` is
 * false, then PORT is not bound at all), and /healthz, /readyz and /metrics on DIRSYNC_METRICS_PORT
 * (0: none).
 * Settings of integrations created through the API are checked with the providers' own
 * `validateSettings`, wired here because the API package may not import the providers; syncs are
 * asked for with the scheduler package's `requestSync`, which the API package may not import either.
 */
export async function startHttpServer(
  ctx: Context,
  logger: Logger,
  options: {
    serveApi: boolean;
    readinessChecks?: Readonly<Record<string, () => { readonly ok: boolean; readonly detail?: string }>>;
    /**
     * Whether DIRSYNC_INSTALLATION_METRICS=auto lets this process compete for exporting the
     * installation-wide series (default true: the scheduler).
     */
    installationMetricsByDefault?: boolean;
  },
): Promise<HttpServers> {
  const { config } = ctx;
  const [{ createApiServer }, { consoleAssetsDir }, { requestSync }] = await Promise.all([apiPackage(), consolePackage(), schedulerPackage()]);
  const competes = config.DIRSYNC_INSTALLATION_METRICS === 'auto' ? options.installationMetricsByDefault !== false : config.DIRSYNC_INSTALLATION_METRICS === 'true';
  const server = await createApiServer({
    db: ctx.db(),
    connection: redisSettingsOf(config),
    prefix: config.DIRSYNC_QUEUE_PREFIX,
    logger,
    keyRing: config.DIRSYNC_SECRET_KEY ? ctx.keyRing() : undefined,
    validateSettings,
    requestSync,
    connectorTooling: { generateCertificate, cloudHosts: entraCloud },
    scheduleJitterMaxMs: config.DIRSYNC_SCHEDULER_JITTER_MAX_SECONDS * 1000,
    controlTimeoutMs: config.DIRSYNC_CONTROL_TIMEOUT_SECONDS * 1000,
    webhookAllowHttp: config.DIRSYNC_WEBHOOK_ALLOW_HTTP,
    rateLimit: { max: config.DIRSYNC_API_RATE_LIMIT, timeWindowMs: 60_000 },
    publicRateLimit: { max: config.DIRSYNC_PUBLIC_RATE_LIMIT, timeWindowMs: 60_000 },
    rateLimitOnRedisDown: config.DIRSYNC_RATE_LIMIT_ON_REDIS_DOWN,
    serveApi: options.serveApi,
    readinessChecks: options.readinessChecks,
    // Every process allowed to export them competes for one lease in Redis: however many
    // replicas run, one live process exports the series at a time.
    installationMetrics: competes ? 'leader' : false,
    console: {
      assetsDir: consoleAssetsDir,
      publicUrl: consoleUrlOf(config),
      sessionTtlMs: config.DIRSYNC_CONSOLE_SESSION_HOURS * 3_600_000,
      oidc: consoleOidcOf(config),
    },
  });
  if (options.serveApi) {
    try {
      const port = await server.listen(config.PORT, config.DIRSYNC_API_HOST);
      logger.info({ port, api: true, console: `${consoleUrlOf(config)}/console/`, consoleSignIn: consoleOidcOf(config) ? 'oidc' : 'one-time links' }, 'api listening');
    } catch (error) {
      await server.close();
      throw error;
    }
  } else {
    // Without the API, PORT stays free (a scheduler next to an API or another scheduler on one
    // host must not fail on it): the probes are answered on the operations port only.
    logger.info({ metricsPort: config.DIRSYNC_METRICS_PORT }, 'api disabled: PORT not bound, /healthz and /readyz on DIRSYNC_METRICS_PORT');
  }
  // Metrics name accounts and integrations: only on the internal port, never on PORT.
  const ops = await serveOpsPort({ port: config.DIRSYNC_METRICS_PORT, host: config.DIRSYNC_API_HOST, ...server.ops, logger });
  return {
    server,
    async close() {
      await server.close();
      await ops?.close();
    },
  };
}

/** `dirsync api` and `dirsync api-keys …`. */
export function registerApiCommands(program: Command, withContext: WithContext): void {
  program
    .command('api')
    .description('serve the HTTP API on PORT until SIGTERM (finishes requests in flight first)')
    .action(() =>
      withContext(async (ctx) => {
        ctx.setRole('dirsync-api');
        const logger = ctx.logger('api');
        // API replicas leave the installation-wide series to the scheduler (DIRSYNC_INSTALLATION_METRICS).
        const server = await startHttpServer(ctx, logger, { serveApi: true, installationMetricsByDefault: false });
        logger.info('api started');
        const signal = await shutdownSignal();
        logger.info({ signal }, 'api stopping: finishing requests in flight');
        await server.close();
        logger.info('api stopped');
      }),
    );

  const keys = program.command('api-keys').description('API keys of accounts (and platform keys for the queue dashboard)');
  keys
    .command('create')
    .description('create an API key; its token is printed once and never stored')
    .option('--account <account>', 'account id or name the key acts for')
    .option('--platform', 'a platform key (no account): for the queue dashboard')
    .requiredOption('--scopes <scopes>', 'comma-separated: read, sync, admin')
    .option('--name <name>', 'what the key is for', 'api key')
    .action((flags: { account?: string; platform?: boolean; scopes: string; name: string }) =>
      withContext(async (ctx) => {
        if (Boolean(flags.account) === Boolean(flags.platform)) throw new UsageError('choose one of --account <account> and --platform');
        let accountId: string | null = null;
        if (flags.account) {
          const account = await getAccount(ctx.db(), flags.account);
          if (!account) throw new NotFoundError(`no account "${flags.account}"`);
          accountId = account.id;
        }
        const scopes = parseApiScopes(flags.scopes);
        const { apiKey, token } = await createApiKey(ctx.db(), { accountId, name: flags.name, scopes, createdBy: 'cli' });
        await recordAudit(ctx.db(), {
          ...(accountId === null ? {} : { accountId }),
          actor: 'cli',
          action: 'api_key.created',
          details: { keyId: apiKey.id, name: apiKey.name, scopes },
        });
        process.stderr.write(`API key ${apiKey.id} (${scopes.join(', ')}) created: store the token now, it is not shown again\n`);
        console.log(token);
      }),
    );
  keys
    .command('list')
    .description('list API keys (never their tokens)')
    .option('--account <account>', 'only this account (id or name)')
    .option('--platform', 'only platform keys')
    .option('--json', 'print JSON: { "items": [{ "id", "accountId", "name", "scopes", "createdAt", "lastUsedAt", "revokedAt" }] } (accountId null: a platform key)')
    .action((flags: { account?: string; platform?: boolean; json?: boolean }) =>
      withContext(async (ctx) => {
        let filter: { accountId?: string | null } = {};
        if (flags.platform) filter = { accountId: null };
        if (flags.account) {
          const account = await getAccount(ctx.db(), flags.account);
          if (!account) throw new NotFoundError(`no account "${flags.account}"`);
          filter = { accountId: account.id };
        }
        const rows = await listApiKeys(ctx.db(), filter);
        if (flags.json) {
          const items = rows.map((k) => ({ id: k.id, accountId: k.accountId, name: k.name, scopes: k.scopes, createdAt: k.createdAt, lastUsedAt: k.lastUsedAt, revokedAt: k.revokedAt }));
          printJson(apiKeyListSchema, { items });
          return;
        }
        console.log(
          table(
            ['id', 'account', 'name', 'scopes', 'created', 'last used', 'revoked'],
            rows.map((k) => [k.id, k.accountId ?? '(platform)', k.name, k.scopes.join(','), k.createdAt, k.lastUsedAt, k.revokedAt]),
          ),
        );
      }),
    );
  keys
    .command('revoke <key>')
    .description('revoke an API key at once')
    .action((id: string) =>
      withContext(async (ctx) => {
        const key = await revokeApiKey(ctx.db(), id);
        await recordAudit(ctx.db(), { ...(key.accountId === null ? {} : { accountId: key.accountId }), actor: 'cli', action: 'api_key.revoked', details: { keyId: key.id } });
        console.log('revoked');
      }),
    );
}
