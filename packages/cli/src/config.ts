import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { hostname } from 'node:os';
import { z } from 'zod';
import { MAX_SYNC_SHARDS, parseShardSelection, type RedisSettings } from '@dirsync/jobs/settings';
import { parseCidrList } from '@dirsync/providers';

const cronish = z.string().trim().min(1);

/** An optional setting given as an empty string (`VAR=` in a compose file) counts as unset. */
function unsetWhenBlank<T extends z.ZodType>(schema: T) {
  return z.preprocess((value) => (typeof value === 'string' && value.trim() === '' ? undefined : value), schema);
}

// Traces go to `<endpoint>/v1/traces`: a query or fragment would swallow that path, and every
// export would fail unseen.
const otlpEndpointTail = (name: string) =>
  `${name} must not have a query or fragment: traces are sent to <endpoint>/v1/traces (a collector's token goes in DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS)`;

/**
 * Every setting of the dirsync processes, read from the environment once at start. All problems
 * are reported together; nothing else in the code base reads `process.env`.
 */
export const configSchema = z.object({
  DATABASE_URL: z
    .string()
    .url('DATABASE_URL must be a postgres:// URL')
    .refine((v) => /^postgres(ql)?:\/\//.test(v), 'DATABASE_URL must be a postgres:// URL')
    .default('postgres://postgres@127.0.0.1:5432/dirsync'),
  /**
   * `redis://` or `rediss://` (TLS) URL, with user name and password when the service needs them.
   * In cluster mode one or more seed nodes, comma-separated.
   */
  REDIS_URL: z
    .string()
    .trim()
    .refine(
      (v) => v.split(',').every((entry) => /^rediss?:\/\/[^\s,]+$/.test(entry.trim()) && URL.canParse(entry.trim())),
      'REDIS_URL must be a redis:// or rediss:// URL (in cluster mode: one or more, comma-separated)',
    )
    .default('redis://127.0.0.1:6379'),
  /** `cluster` for a Redis Cluster (queue keys are hash-tagged; REDIS_URL lists seed nodes). */
  DIRSYNC_REDIS_MODE: z.enum(['standalone', 'cluster'], { message: 'DIRSYNC_REDIS_MODE must be standalone or cluster' }).default('standalone'),
  /** Queues the sync queue is split into; 1 is the single queue of earlier versions. Every process must agree. */
  DIRSYNC_SYNC_SHARDS: z.coerce
    .number()
    .int()
    .min(1, `DIRSYNC_SYNC_SHARDS must be 1–${MAX_SYNC_SHARDS}`)
    .max(MAX_SYNC_SHARDS, `DIRSYNC_SYNC_SHARDS must be 1–${MAX_SYNC_SHARDS}`)
    .default(1),
  /** Sync shards a worker consumes, e.g. `0-3,7`; empty (the default) or `all`: every shard. */
  DIRSYNC_WORKER_SHARDS: z.string().trim().default(''),
  /** Connections each process keeps at most in its PostgreSQL pool. */
  DIRSYNC_DB_POOL_MAX: z.coerce.number().int().min(1, 'DIRSYNC_DB_POOL_MAX must be 1–1000').max(1000, 'DIRSYNC_DB_POOL_MAX must be 1–1000').default(10),
  /** Seconds an unused PostgreSQL connection stays open before the pool closes it (0: never). */
  DIRSYNC_DB_IDLE_TIMEOUT_SECONDS: z.coerce.number().int().min(0).max(86_400).default(60),
  /** Seconds to wait for a new PostgreSQL connection before the query fails. */
  DIRSYNC_DB_CONNECT_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(300).default(5),
  /**
   * Seconds one PostgreSQL statement may run before the server cancels it (0: no limit). The
   * default is far above the pipeline's largest statements; it ends statements stuck on a lock.
   */
  DIRSYNC_DB_STATEMENT_TIMEOUT_SECONDS: z.coerce
    .number()
    .int()
    .min(0, 'DIRSYNC_DB_STATEMENT_TIMEOUT_SECONDS must be 0–86400')
    .max(86_400, 'DIRSYNC_DB_STATEMENT_TIMEOUT_SECONDS must be 0–86400')
    .default(300),
  /**
   * DATABASE_URL names PgBouncer in transaction mode: no protocol-level prepared statements, and
   * the statement timeout is left to the server side (PgBouncer refuses it as a startup parameter).
   */
  DIRSYNC_DB_PGBOUNCER: z
    .enum(['true', 'false', '1', '0', 'on', 'off'], { message: 'DIRSYNC_DB_PGBOUNCER must be true or false' })
    .default('false')
    .transform((v) => ['true', '1', 'on'].includes(v)),
  /** Days a finished sync run is kept (0: for ever); the scheduler's reconciler prunes older ones. */
  DIRSYNC_RUN_RETENTION_DAYS: z.coerce.number().int().min(0, 'DIRSYNC_RUN_RETENTION_DAYS must be 0–36500').max(36_500, 'DIRSYNC_RUN_RETENTION_DAYS must be 0–36500').default(30),
  /** Latest runs of each integration kept whatever their age. */
  DIRSYNC_RUN_RETENTION_KEEP: z.coerce.number().int().min(1, 'DIRSYNC_RUN_RETENTION_KEEP must be 1–100000').max(100_000, 'DIRSYNC_RUN_RETENTION_KEEP must be 1–100000').default(50),
  /** Days an audit event is kept (0: for ever). */
  DIRSYNC_AUDIT_RETENTION_DAYS: z.coerce.number().int().min(0, 'DIRSYNC_AUDIT_RETENTION_DAYS must be 0–36500').max(36_500, 'DIRSYNC_AUDIT_RETENTION_DAYS must be 0–36500').default(365),
  /**
   * Hours a change feed entry is kept (0: for ever): a consumer may fall this far behind before it
   * must resync (410 `cursor-expired`).
   */
  DIRSYNC_CHANGE_RETENTION_HOURS: z.coerce
    .number()
    .int()
    .min(0, 'DIRSYNC_CHANGE_RETENTION_HOURS must be 0–876000')
    .max(876_000, 'DIRSYNC_CHANGE_RETENTION_HOURS must be 0–876000')
    .default(168),
  /** Failed webhook deliveries in a row after which an endpoint is disabled (an action needed tells its account). */
  DIRSYNC_WEBHOOK_DISABLE_AFTER_FAILURES: z.coerce
    .number()
    .int()
    .min(1, 'DIRSYNC_WEBHOOK_DISABLE_AFTER_FAILURES must be 1–10000')
    .max(10_000, 'DIRSYNC_WEBHOOK_DISABLE_AFTER_FAILURES must be 1–10000')
    .default(20),
  /** Webhook endpoints may be `http:` URLs (default: `https:` only). Where they may connect is the destination policy's. */
  DIRSYNC_WEBHOOK_ALLOW_HTTP: z
    .enum(['true', 'false', '1', '0', 'on', 'off'], { message: 'DIRSYNC_WEBHOOK_ALLOW_HTTP must be true or false' })
    .default('false')
    .transform((v) => ['true', '1', 'on'].includes(v)),
  /** Days a finished webhook delivery is kept (0: for ever); the reconciler prunes older ones. */
  DIRSYNC_WEBHOOK_RETENTION_DAYS: z.coerce.number().int().min(0, 'DIRSYNC_WEBHOOK_RETENTION_DAYS must be 0–36500').max(36_500, 'DIRSYNC_WEBHOOK_RETENTION_DAYS must be 0–36500').default(30),
  /**
   * What the API's per-key and per-address rate limiters do while Redis cannot be reached:
   * `closed` answers 503 with Retry-After (the default: no request passes unlimited), `open` lets
   * requests through unlimited. The probes and the docs are never refused for it.
   */
  DIRSYNC_RATE_LIMIT_ON_REDIS_DOWN: z.enum(['open', 'closed'], { message: 'DIRSYNC_RATE_LIMIT_ON_REDIS_DOWN must be open or closed' }).default('closed'),
  /** Base64 of 32 random bytes (`dirsync secrets generate-key`). Needed by commands that touch secrets. */
  DIRSYNC_SECRET_KEY: z.string().optional(),
  /** Older keys still accepted for decryption while `dirsync secrets rotate-key` re-encrypts. */
  DIRSYNC_SECRET_KEYS_PREVIOUS: z
    .string()
    .optional()
    .transform((v) => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : [])),
  /** BullMQ key prefix, to run several installations on one Redis. */
  /**
   * BullMQ key prefix, to run several installations on one Redis. A `{…}` hash tag is accepted
   * (every queue then lives in that one cluster slot; without one, cluster mode tags each queue).
   */
  DIRSYNC_QUEUE_PREFIX: z
    .string()
    .regex(/^(?:[A-Za-z0-9_.-]|\{[A-Za-z0-9_.-]+\})+$/, 'DIRSYNC_QUEUE_PREFIX: letters, digits, _ . - only, with at most whole {…} hash tags')
    .default('dirsync'),
  DIRSYNC_WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(2),
  /**
   * Syncs of one account running at once across every worker (0: unlimited), so one customer's
   * backlog cannot take every worker slot from the others.
   */
  DIRSYNC_ACCOUNT_CONCURRENCY: z.coerce.number().int().min(0, 'DIRSYNC_ACCOUNT_CONCURRENCY must be 0–1000').max(1_000, 'DIRSYNC_ACCOUNT_CONCURRENCY must be 0–1000').default(4),
  /**
   * Full syncs of one account running at once (0: one less than DIRSYNC_ACCOUNT_CONCURRENCY).
   * Kept below the account limit, so the account's deltas always have a slot.
   */
  DIRSYNC_ACCOUNT_FULL_CONCURRENCY: z.coerce
    .number()
    .int()
    .min(0, 'DIRSYNC_ACCOUNT_FULL_CONCURRENCY must be 0–1000')
    .max(1_000, 'DIRSYNC_ACCOUNT_FULL_CONCURRENCY must be 0–1000')
    .default(1),
  /**
   * Syncs against one directory server (host:port of the LDAP URL) at once across every worker
   * (0: unlimited). Entra ID is exempt: Microsoft Graph throttles per tenant itself.
   */
  DIRSYNC_HOST_CONCURRENCY: z.coerce.number().int().min(0, 'DIRSYNC_HOST_CONCURRENCY must be 0–1000').max(1_000, 'DIRSYNC_HOST_CONCURRENCY must be 0–1000').default(4),
  /** Mean seconds before a sync turned away by a limit tries again (±50 % jitter). */
  DIRSYNC_LIMIT_RETRY_SECONDS: z.coerce
    .number()
    .min(0.1, 'DIRSYNC_LIMIT_RETRY_SECONDS must be 0.1–300')
    .max(300, 'DIRSYNC_LIMIT_RETRY_SECONDS must be 0.1–300')
    .default(1),
  /** Entries one sync run may fetch before it fails (a directory that never stops answering). */
  DIRSYNC_MAX_OBJECTS_PER_RUN: z.coerce
    .number()
    .int()
    .min(1_000, 'DIRSYNC_MAX_OBJECTS_PER_RUN must be 1000–100000000')
    .max(100_000_000, 'DIRSYNC_MAX_OBJECTS_PER_RUN must be 1000–100000000')
    .default(5_000_000),
  /** Minutes one sync run may take, pipeline time included, before it fails. */
  DIRSYNC_MAX_RUN_MINUTES: z.coerce.number().int().min(1, 'DIRSYNC_MAX_RUN_MINUTES must be 1–10080').max(10_080, 'DIRSYNC_MAX_RUN_MINUTES must be 1–10080').default(360),
  /**
   * Minutes after a tenant's consent is granted during which Entra ID's refusals are taken for
   * the grant still propagating: the run is retried, the consent stays granted.
   */
  DIRSYNC_CONSENT_GRACE_MINUTES: z.coerce
    .number()
    .int()
    .min(0, 'DIRSYNC_CONSENT_GRACE_MINUTES must be 0–1440')
    .max(1_440, 'DIRSYNC_CONSENT_GRACE_MINUTES must be 0–1440')
    .default(30),
  /** Runs in a row Entra ID must refuse for lack of consent, past the grace, before the consent counts as revoked. */
  DIRSYNC_CONSENT_FAILURES_TO_REVOKE: z.coerce
    .number()
    .int()
    .min(1, 'DIRSYNC_CONSENT_FAILURES_TO_REVOKE must be 1–100')
    .max(100, 'DIRSYNC_CONSENT_FAILURES_TO_REVOKE must be 1–100')
    .default(3),
  /**
   * Seconds a consent verification keeps asking for fresh tokens while they lack the permissions
   * the administrator just granted, before it records what the tokens carry.
   */
  DIRSYNC_CONSENT_PROPAGATION_WAIT_SECONDS: z.coerce
    .number()
    .int()
    .min(0, 'DIRSYNC_CONSENT_PROPAGATION_WAIT_SECONDS must be 0–900')
    .max(900, 'DIRSYNC_CONSENT_PROPAGATION_WAIT_SECONDS must be 0–900')
    .default(120),
  DIRSYNC_WORKER_ID: z.string().min(1).default(`${hostname()}-${process.pid}`),
  /** How often the scheduler looks for due syncs (cron with seconds). */
  DIRSYNC_SCHEDULER_TICK: cronish.default('*/30 * * * * *'),
  /**
   * Longest stable jitter of an integration's slots, in seconds (it never exceeds the shorter of
   * its two cron intervals); 0 turns jitter off.
   */
  DIRSYNC_SCHEDULER_JITTER_MAX_SECONDS: z.coerce
    .number()
    .int()
    .min(0, 'DIRSYNC_SCHEDULER_JITTER_MAX_SECONDS must be 0–86400')
    .max(86_400, 'DIRSYNC_SCHEDULER_JITTER_MAX_SECONDS must be 0–86400')
    .default(3_600),
  /** Due integrations a scheduler replica claims per batch (replicas ticking together take different batches). */
  DIRSYNC_SCHEDULER_BATCH_SIZE: z.coerce
    .number()
    .int()
    .min(1, 'DIRSYNC_SCHEDULER_BATCH_SIZE must be 1–10000')
    .max(10_000, 'DIRSYNC_SCHEDULER_BATCH_SIZE must be 1–10000')
    .default(100),
  /** Seconds between the scheduler's reconciler passes (runs whose queue job was lost or failed). */
  DIRSYNC_RECONCILE_SECONDS: z.coerce.number().int().min(1).max(86_400).default(60),
  /** Seconds a running run whose queue job is gone may stay silent before the reconciler fails it. */
  DIRSYNC_RUN_STALL_SECONDS: z.coerce.number().int().min(30).max(7 * 86_400).default(600),
  /** Integration secret for `integrations add`/`set-password` without a prompt (never a flag). */
  DIRSYNC_INTEGRATION_SECRET: z.string().optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Port of the HTTP API (`dirsync api`, and `dirsync scheduler` unless its API is off). */
  PORT: z.coerce.number().int().min(0, 'PORT must be 0–65535').max(65535, 'PORT must be 0–65535').default(8080),
  /** Address the API listens on. */
  DIRSYNC_API_HOST: z.string().trim().min(1).default('0.0.0.0'),
  /** `false` stops `dirsync scheduler` from serving the API (it still answers /healthz and /readyz on PORT). */
  DIRSYNC_SCHEDULER_API: z
    .enum(['true', 'false', '1', '0', 'on', 'off'], { message: 'DIRSYNC_SCHEDULER_API must be true or false' })
    .default('true')
    .transform((v) => ['true', '1', 'on'].includes(v)),
  /** Requests one API key may make per minute (per-key rate limit, shared by every API replica). */
  DIRSYNC_API_RATE_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(600),
  /** Requests one client address may make per minute to the routes without a key (probes, docs, consent callback). */
  DIRSYNC_PUBLIC_RATE_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(300),
  /**
   * Public origin of the API and its console, as browsers reach it (`https://dirsync.example.com`, no path):
   * sign-in redirects and one-time links use it, an https URL makes the session cookie Secure, and
   * changes are accepted only from its origin. Default `http://localhost:<PORT>`.
   */
  DIRSYNC_CONSOLE_URL: unsetWhenBlank(
    z
      .string()
      .trim()
      .refine((v) => /^https?:\/\/[^\s/?#]+\/?$/.test(v) && URL.canParse(v), 'DIRSYNC_CONSOLE_URL must be an http:// or https:// origin without a path (the console is served at /console)')
      .optional(),
  ),
  /** Hours a console session lasts after sign-in. */
  DIRSYNC_CONSOLE_SESSION_HOURS: z.coerce
    .number()
    .min(0.25, 'DIRSYNC_CONSOLE_SESSION_HOURS must be 0.25–720')
    .max(720, 'DIRSYNC_CONSOLE_SESSION_HOURS must be 0.25–720')
    .default(8),
  /**
   * Issuer URL of the OpenID Connect provider console users sign in with (https; http only on
   * loopback). With DIRSYNC_OIDC_CLIENT_ID; without both, the console offers one-time links only.
   */
  DIRSYNC_OIDC_ISSUER: unsetWhenBlank(
    z
      .string()
      .trim()
      .refine((v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol), 'DIRSYNC_OIDC_ISSUER must be an https:// URL')
      .optional(),
  ),
  /** Client id of the console at the OpenID Connect provider (redirect URI `<DIRSYNC_CONSOLE_URL>/console/auth/callback`). */
  DIRSYNC_OIDC_CLIENT_ID: unsetWhenBlank(z.string().trim().min(1).optional()),
  /** Client secret of a confidential client; unset: a public client protected by PKCE alone. */
  DIRSYNC_OIDC_CLIENT_SECRET: unsetWhenBlank(z.string().min(1).optional()),
  /** Scopes the console asks for, space-separated; must include `openid`. */
  DIRSYNC_OIDC_SCOPES: z
    .string()
    .trim()
    .refine((v) => v.split(/\s+/).includes('openid'), 'DIRSYNC_OIDC_SCOPES must include openid')
    .default('openid profile email'),
  /** Claim (ID token or userinfo) listing a user's roles as `<account>:<role>` entries; `*:<role>` for every account. */
  DIRSYNC_OIDC_ROLES_CLAIM: z.string().trim().min(1, 'DIRSYNC_OIDC_ROLES_CLAIM must not be empty').default('dirsync_roles'),
  /** How long the API waits for a worker to answer Test Connection or a new password's check. */
  DIRSYNC_CONTROL_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(600).default(30),
  /** Internal port of /metrics (with /healthz, /readyz) of workers, schedulers and API servers; 0 serves none. */
  DIRSYNC_METRICS_PORT: z.coerce.number().int().min(0, 'DIRSYNC_METRICS_PORT must be 0–65535').max(65535, 'DIRSYNC_METRICS_PORT must be 0–65535').default(9464),
  /**
   * Which process exports the installation-wide series (queues, integrations, runs, connectors,
   * actions needed): `auto` the scheduler only (not `dirsync api` replicas), `true` this process
   * too, `false` not this one. They are read from PostgreSQL and Redis, the same everywhere.
   */
  DIRSYNC_INSTALLATION_METRICS: z.enum(['auto', 'true', 'false'], { message: 'DIRSYNC_INSTALLATION_METRICS must be auto, true or false' }).default('auto'),
  /**
   * OTLP/HTTP endpoint workers send their sync runs' traces to (`<endpoint>/v1/traces`); unset
   * (and OTEL_EXPORTER_OTLP_ENDPOINT unset): no tracing, at no cost.
   */
  DIRSYNC_OTEL_EXPORTER_OTLP_ENDPOINT: unsetWhenBlank(
    z
      .string()
      .trim()
      .refine((v) => /^https?:\/\//.test(v) && URL.canParse(v), 'DIRSYNC_OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL (the OTLP/HTTP base endpoint, e.g. http://otel-collector:4318)')
      .refine((v) => !/[?#]/.test(v), otlpEndpointTail('DIRSYNC_OTEL_EXPORTER_OTLP_ENDPOINT'))
      .optional(),
  ),
  /**
   * Headers sent with every OTLP export (a collector's token): `key=value,key2=value2`, values
   * percent-decoded, as OpenTelemetry's OTEL_EXPORTER_OTLP_HEADERS. A secret setting (`_FILE`).
   */
  DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS: unsetWhenBlank(
    z
      .string()
      .transform((value, ctx) => {
        const parsed = parseOtlpHeaders(value);
        if (parsed.ok) return parsed.headers;
        for (const problem of parsed.problems) ctx.addIssue({ code: 'custom', message: `DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS: ${problem}` });
        return z.NEVER;
      })
      .optional(),
  ),
  // The OTLP exporter would add these to every export by itself, past this schema: refused, so
  // that the collector's headers come from DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS alone.
  OTEL_EXPORTER_OTLP_HEADERS: unsetWhenBlank(z.undefined({ message: 'OTEL_EXPORTER_OTLP_HEADERS is not read by dirsync: set DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS (or DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS_FILE) instead' })),
  OTEL_EXPORTER_OTLP_TRACES_HEADERS: unsetWhenBlank(
    z.undefined({ message: 'OTEL_EXPORTER_OTLP_TRACES_HEADERS is not read by dirsync: set DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS (or DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS_FILE) instead' }),
  ),
  /** OpenTelemetry's standard variable, used when DIRSYNC_OTEL_EXPORTER_OTLP_ENDPOINT is unset. */
  OTEL_EXPORTER_OTLP_ENDPOINT: unsetWhenBlank(
    z
      .string()
      .trim()
      .refine((v) => /^https?:\/\//.test(v) && URL.canParse(v), 'OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL (the OTLP/HTTP base endpoint, e.g. http://otel-collector:4318)')
      .refine((v) => !/[?#]/.test(v), otlpEndpointTail('OTEL_EXPORTER_OTLP_ENDPOINT'))
      .optional(),
  ),
  /**
   * Networks where customers' directories may be reached although the addresses are private,
   * loopback or link-local (a VPN, a private link): comma-separated CIDRs. Everything else but
   * public addresses is refused, and the platform's own Redis and PostgreSQL always are.
   */
  DIRSYNC_ALLOWED_NETWORKS: z
    .string()
    .optional()
    .transform((value, ctx) => {
      const parsed = parseCidrList(value ?? '');
      if (parsed.ok) return parsed.networks;
      for (const problem of parsed.problems) ctx.addIssue({ code: 'custom', message: `DIRSYNC_ALLOWED_NETWORKS: ${problem}` });
      return z.NEVER;
    }),
});

// An HTTP header name (RFC 9110 token) and what a header value may not hold: line breaks, NUL
// and other controls but tab would end or corrupt the request, and Node's HTTP client refuses
// anything past Latin-1 (every export would fail, unseen).
const headerName = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const badHeaderValue = /[^\t\u0020-\u007e\u0080-\u00ff]/;

/**
 * Parses OTLP export headers in OpenTelemetry's format: `key=value` pairs separated by commas,
 * blanks around each trimmed, each value percent-decoded. Problems name a pair by its position
 * and key, never by its value (a value is usually a token).
 */
export function parseOtlpHeaders(text: string): { ok: true; headers: Record<string, string> } | { ok: false; problems: string[] } {
  const headers: Record<string, string> = {};
  const problems: string[] = [];
  text.split(',').forEach((pair, index) => {
    const at = `pair ${index + 1}`;
    const equals = pair.indexOf('=');
    const key = (equals < 0 ? pair : pair.slice(0, equals)).trim();
    if (equals < 0 || key === '') {
      problems.push(`${at} is not key=value`);
      return;
    }
    if (!headerName.test(key)) {
      problems.push(`${at}: the key is not an HTTP header name`);
      return;
    }
    let value: string;
    try {
      value = decodeURIComponent(pair.slice(equals + 1).trim());
    } catch {
      problems.push(`${at} (${key}): the value is not valid percent-encoding`);
      return;
    }
    if (value === '' || badHeaderValue.test(value)) {
      problems.push(`${at} (${key}): the value is empty or holds control characters or characters an HTTP header cannot carry (past Latin-1)`);
      return;
    }
    if (Object.hasOwn(headers, key.toLowerCase())) {
      problems.push(`${at} (${key}): the header is given twice`);
      return;
    }
    headers[key.toLowerCase()] = value;
  });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, headers };
}

/** Parsed configuration. */
export type Config = z.infer<typeof configSchema>;

/** Raised with every configuration problem at once. */
export class ConfigurationError extends Error {
  constructor(problems: string[]) {
    // Two checks of one setting may word its problem alike: one line each.
    super(`invalid configuration:\n  - ${[...new Set(problems)].join('\n  - ')}`);
    this.name = 'ConfigurationError';
  }
}

/**
 * The settings that carry credentials. Each also accepts `<NAME>_FILE`, the path of a file whose
 * content is the value (a Kubernetes Secret or Docker secret mounted as a file), so the value need
 * not sit in the process environment.
 */
export const secretSettings = [
  'DATABASE_URL',
  'REDIS_URL',
  'DIRSYNC_SECRET_KEY',
  'DIRSYNC_SECRET_KEYS_PREVIOUS',
  'DIRSYNC_OIDC_CLIENT_SECRET',
  'DIRSYNC_INTEGRATION_SECRET',
  'DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS',
] as const satisfies readonly (keyof z.input<typeof configSchema>)[];

/** Largest secret file read: secrets are short, and a wrong path must not load a disk image into memory. */
const SECRET_FILE_MAX_BYTES = 64 * 1024;

/**
 * The content of a secret file, read through one descriptor and never past the bound: the size
 * `stat` reports is not a bound (files of /proc report 0 and read megabytes, a file may grow
 * between the check and the read). `undefined` when larger than the bound.
 */
function readSecretFile(path: string): string | 'not a file' | undefined {
  // Non-blocking: opening a FIFO for reading would otherwise wait for a writer.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    if (!fstatSync(fd).isFile()) return 'not a file';
    const buffer = Buffer.alloc(SECRET_FILE_MAX_BYTES + 1);
    let length = 0;
    while (length < buffer.length) {
      const read = readSync(fd, buffer, length, buffer.length - length, null);
      if (read === 0) break;
      length += read;
    }
    return length > SECRET_FILE_MAX_BYTES ? undefined : buffer.toString('utf8', 0, length);
  } finally {
    closeSync(fd);
  }
}

/**
 * `env` with every `<NAME>_FILE` of {@link secretSettings} replaced by its file's content
 * (trailing line breaks trimmed). Problems name the variable and the path, never the content.
 */
function resolveSecretFiles(env: Record<string, string | undefined>): { env: Record<string, string | undefined>; problems: string[] } {
  const resolved = { ...env };
  const problems: string[] = [];
  for (const name of secretSettings) {
    const fileVariable = `${name}_FILE`;
    const path = (env[fileVariable] ?? '').trim();
    if (path === '') continue;
    if ((env[name] ?? '').trim() !== '') {
      problems.push(`${name} and ${fileVariable} are both set: set one of them`);
      continue;
    }
    try {
      const content = readSecretFile(path);
      if (content === 'not a file') {
        problems.push(`${fileVariable}: ${path} is not a file`);
        continue;
      }
      if (content === undefined) {
        problems.push(`${fileVariable}: ${path} is larger than ${SECRET_FILE_MAX_BYTES} bytes`);
        continue;
      }
      resolved[name] = content.replace(/[\r\n]+$/, '');
    } catch (error) {
      // The code alone (ENOENT, EACCES…): a message could one day quote more than the path.
      const code = typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' ? error.code : 'unreadable';
      problems.push(`${fileVariable}: cannot read ${path} (${code})`);
    }
  }
  return { env: resolved, problems };
}

/**
 * Parses the environment (or the given record) into a {@link Config}. A secret setting may come
 * from `<NAME>_FILE` instead (see {@link secretSettings}).
 */
export function loadConfig(rawEnv: Record<string, string | undefined> = process.env): Config {
  const { env, problems: fileProblems } = resolveSecretFiles(rawEnv);
  const parsed = configSchema.safeParse(env);
  // Read from the raw environment, so they are reported beside the schema's own problems.
  const consoleProblems = consoleSettingProblems(env);
  if (!parsed.success || fileProblems.length > 0) {
    throw new ConfigurationError([
      ...fileProblems,
      ...(parsed.success
        ? []
        : parsed.error.issues.map((issue) => {
            const key = issue.path.join('.');
            return issue.message.startsWith(key) ? issue.message : `${key}: ${issue.message}`;
          })),
      ...consoleProblems,
    ]);
  }
  const problems = [...redisSettingProblems(parsed.data), ...consoleProblems];
  if (problems.length > 0) throw new ConfigurationError(problems);
  return parsed.data;
}

// Checks that relate several Redis settings to each other.
function redisSettingProblems(config: Config): string[] {
  const problems: string[] = [];
  if (config.DIRSYNC_REDIS_MODE === 'standalone' && config.REDIS_URL.includes(',')) {
    problems.push('REDIS_URL lists several nodes: set DIRSYNC_REDIS_MODE=cluster for a Redis Cluster, or give one URL');
  }
  try {
    parseShardSelection(config.DIRSYNC_WORKER_SHARDS, config.DIRSYNC_SYNC_SHARDS);
  } catch (error) {
    problems.push(`DIRSYNC_WORKER_SHARDS: ${error instanceof Error ? error.message : String(error)}`);
  }
  return problems;
}

const loopbackHosts = new Set(['localhost', '127.0.0.1', '[::1]']);

// Checks that relate the console's sign-in settings to each other.
function consoleSettingProblems(env: Record<string, string | undefined>): string[] {
  const problems: string[] = [];
  const set = (name: string) => (env[name] ?? '').trim() !== '';
  const issuer = set('DIRSYNC_OIDC_ISSUER');
  const clientId = set('DIRSYNC_OIDC_CLIENT_ID');
  if (issuer && !clientId) problems.push('DIRSYNC_OIDC_ISSUER is set without DIRSYNC_OIDC_CLIENT_ID: set both, or neither');
  if (!issuer && clientId) problems.push('DIRSYNC_OIDC_CLIENT_ID is set without DIRSYNC_OIDC_ISSUER: set both, or neither');
  if (!issuer && set('DIRSYNC_OIDC_CLIENT_SECRET')) problems.push('DIRSYNC_OIDC_CLIENT_SECRET is set without DIRSYNC_OIDC_ISSUER and DIRSYNC_OIDC_CLIENT_ID');
  const issuerUrl = (env['DIRSYNC_OIDC_ISSUER'] ?? '').trim();
  if (issuer && URL.canParse(issuerUrl)) {
    const url = new URL(issuerUrl);
    if (url.protocol === 'http:' && !loopbackHosts.has(url.hostname)) problems.push('DIRSYNC_OIDC_ISSUER must be an https:// URL (http only on loopback: localhost, 127.0.0.1, [::1])');
  }
  return problems;
}

/** Where workers send traces: DIRSYNC_OTEL_EXPORTER_OTLP_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT, else none. */
export function otlpEndpointOf(config: Config): string | undefined {
  return config.DIRSYNC_OTEL_EXPORTER_OTLP_ENDPOINT ?? config.OTEL_EXPORTER_OTLP_ENDPOINT;
}

/** Headers of every OTLP trace export (DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS), lower-case names; none when unset. */
export function otlpHeadersOf(config: Config): Readonly<Record<string, string>> {
  return config.DIRSYNC_OTEL_EXPORTER_OTLP_HEADERS ?? {};
}

/** The console's public base URL: DIRSYNC_CONSOLE_URL, else `http://localhost:<PORT>`. */
export function consoleUrlOf(config: Config): string {
  return (config.DIRSYNC_CONSOLE_URL ?? `http://localhost:${config.PORT}`).replace(/\/+$/, '');
}

/** The console's OpenID Connect settings, when an issuer and a client id are configured. */
export function consoleOidcOf(config: Config): { issuer: string; clientId: string; clientSecret: string | undefined; scopes: string; rolesClaim: string } | undefined {
  if (config.DIRSYNC_OIDC_ISSUER === undefined || config.DIRSYNC_OIDC_CLIENT_ID === undefined) return undefined;
  return {
    issuer: config.DIRSYNC_OIDC_ISSUER,
    clientId: config.DIRSYNC_OIDC_CLIENT_ID,
    clientSecret: config.DIRSYNC_OIDC_CLIENT_SECRET,
    scopes: config.DIRSYNC_OIDC_SCOPES,
    rolesClaim: config.DIRSYNC_OIDC_ROLES_CLAIM,
  };
}

/** The Redis settings every queue client and worker of the process is given. */
export function redisSettingsOf(config: Config): RedisSettings {
  return { url: config.REDIS_URL, mode: config.DIRSYNC_REDIS_MODE, syncShards: config.DIRSYNC_SYNC_SHARDS };
}

/** The sync shards a worker of this process consumes (`DIRSYNC_WORKER_SHARDS`). */
export function workerShardsOf(config: Config): number[] {
  return parseShardSelection(config.DIRSYNC_WORKER_SHARDS, config.DIRSYNC_SYNC_SHARDS);
}

/**
 * The PostgreSQL pool settings of `config`, as `connect` of @dirsync/db takes them (the context
 * adds the process's application_name).
 */
export function databasePoolOptions(config: Config): {
  max: number;
  idleTimeoutSeconds: number;
  connectTimeoutSeconds: number;
  statementTimeoutSeconds: number;
  pgbouncer: boolean;
} {
  return {
    max: config.DIRSYNC_DB_POOL_MAX,
    idleTimeoutSeconds: config.DIRSYNC_DB_IDLE_TIMEOUT_SECONDS,
    connectTimeoutSeconds: config.DIRSYNC_DB_CONNECT_TIMEOUT_SECONDS,
    statementTimeoutSeconds: config.DIRSYNC_DB_STATEMENT_TIMEOUT_SECONDS,
    pgbouncer: config.DIRSYNC_DB_PGBOUNCER,
  };
}
