import { X509Certificate } from 'node:crypto';
import { attributeMappingSchema } from '@dirsync/contracts';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { graphMappingRules, refineAttributeMapping } from '../mapping/kinds.ts';

/**
 * The Microsoft clouds an Entra tenant can live in: token authority and Graph root of each, as
 * "Microsoft Graph national cloud deployments" (microsoftgraph/microsoft-graph-docs-contrib,
 * concepts/deployments.md) lists them — its "Microsoft Entra ID endpoint" and "Microsoft Graph"
 * columns; `authentication-national-cloud.md` (MicrosoftDocs/entra-docs) has the same global
 * and US Government hosts. US Government is L4 (GCC High); GCC uses the global endpoints.
 */
export const entraClouds = {
  /** Azure global service. */
  global: { authorityHost: 'https://login.microsoftonline.com', graphBaseUrl: 'https://graph.microsoft.com' },
  /** Azure US Government (Microsoft Graph for US Government L4). */
  usgov: { authorityHost: 'https://login.microsoftonline.us', graphBaseUrl: 'https://graph.microsoft.us' },
  /** Azure China operated by 21Vianet. */
  china: { authorityHost: 'https://login.chinacloudapi.cn', graphBaseUrl: 'https://microsoftgraph.chinacloudapi.cn' },
} as const satisfies Record<string, { readonly authorityHost: string; readonly graphBaseUrl: string }>;

/** Name of a cloud of {@link entraClouds}. */
export type EntraCloud = keyof typeof entraClouds;

/** The hosts of a named cloud; a {@link ConfigError} for a name that is none of {@link entraClouds}. */
export function entraCloud(name: string): (typeof entraClouds)[EntraCloud] {
  if (!Object.hasOwn(entraClouds, name)) {
    throw new ConfigError(`unknown Entra cloud "${name}": use one of ${Object.keys(entraClouds).join(', ')}`);
  }
  return entraClouds[name as EntraCloud];
}

/** True for the authority host of one of the {@link entraClouds} (Microsoft's own login hosts). */
export function isKnownAuthorityHost(authorityHost: string): boolean {
  return Object.values(entraClouds).some((cloud) => cloud.authorityHost === authorityHost);
}

/** Microsoft's public cloud: where tokens come from unless the settings name another host. */
export const defaultAuthorityHost = entraClouds.global.authorityHost;
/** Microsoft Graph in the public cloud. */
export const defaultGraphBaseUrl = entraClouds.global.graphBaseUrl;

const guidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const domainPattern = /^(?=.{4,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;

/** True for a GUID in its usual 8-4-4-4-12 form. */
export function isGuid(value: string): boolean {
  return guidPattern.test(value);
}

const guid = (what: string) =>
  z.string({ error: `${what} must be a string` }).refine((v) => isGuid(v), `${what} must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)`);

const tenant = z
  .string({ error: 'tenantId must be a string' })
  .refine((v) => isGuid(v) || domainPattern.test(v), 'tenantId must be the tenant GUID or its domain (contoso.onmicrosoft.com)');

/** An https:// origin with an optional path and no query; trailing slashes are removed. */
export const httpsBaseUrl = (what: string) =>
  z
    .string({ error: `${what} must be a string` })
    .superRefine((value, ctx) => {
      let url: URL;
      try {
        url = new URL(value);
      } catch {
        ctx.addIssue({ code: 'custom', message: `${what} is not a valid URL` });
        return;
      }
      // The Azure SDK refuses anything but HTTPS for an authority, and tokens must never cross plain HTTP.
      if (url.protocol !== 'https:') ctx.addIssue({ code: 'custom', message: `${what} must be an https:// URL` });
      if (url.search !== '' || url.hash !== '') ctx.addIssue({ code: 'custom', message: `${what} must not have a query or fragment` });
      if (url.username !== '' || url.password !== '') ctx.addIssue({ code: 'custom', message: `${what} must not hold credentials` });
    })
    .transform((value) => value.replace(/\/+$/, ''));

/** One or more PEM certificates that parse. */
export const pemCertificates = (what: string) =>
  z.string().superRefine((value, ctx) => {
    const blocks = value.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
    if (blocks.length === 0) {
      ctx.addIssue({ code: 'custom', message: `${what} must hold one or more PEM certificates (-----BEGIN CERTIFICATE-----)` });
      return;
    }
    blocks.forEach((block, i) => {
      try {
        new X509Certificate(block);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: `${what} certificate ${i + 1} cannot be read: ${error instanceof Error ? error.message : String(error)}` });
      }
    });
  });

const int = (what: string, min: number, max: number) =>
  z
    .number({ error: `${what} must be a number` })
    .int(`${what} must be a whole number`)
    .min(min, `${what} must be at least ${min}`)
    .max(max, `${what} must be at most ${max}`);

// Ceilings keep one integration from holding a worker slot for hours (2 h of throttling, 20
// attempts, 10 min of silence per request at most).
const retrySchema = z
  .object({
    /** First backoff delay when the server gives no Retry-After; doubles per attempt. */
    baseDelayMs: int('retry.baseDelayMs', 1, 600_000).default(1_000),
    maxDelayMs: int('retry.maxDelayMs', 1, 3_600_000).default(60_000),
    /**
     * Longest total wait for throttling (429/503/504) within one request before the run gives up
     * as unavailable (and the job is retried later). Throttling alone never fails a run sooner.
     */
    maxWaitMs: int('retry.maxWaitMs', 0, 2 * 3_600_000).default(30 * 60_000),
    /** Attempts of a request failing with a network error or another 5xx. */
    maxAttempts: int('retry.maxAttempts', 1, 20).default(6),
  })
  .strict();

const defaultRetry = { baseDelayMs: 1_000, maxDelayMs: 60_000, maxWaitMs: 30 * 60_000, maxAttempts: 6 };

/**
 * Settings of a Microsoft Entra ID integration (`integrations.settings`). The integration names
 * either a connector (the platform's app registration, whose certificate the worker loads) or,
 * for legacy integrations, the customer's own app registration whose client secret is the
 * integration's encrypted secret. No credential is ever part of the settings.
 */
export const entraIdSettingsSchema = z
  .object({
    /** The customer's tenant: GUID or verified domain. */
    tenantId: tenant,
    /** Connector the integration authenticates with (after the tenant's admin consent). */
    connectorId: z.uuid({ error: 'connectorId must be a UUID' }).optional(),
    /** Legacy: the customer's own app registration (client secret = the integration secret). */
    legacyApp: z.object({ clientId: guid('legacyApp.clientId') }).strict().optional(),
    /** Set when a legacy integration was migrated to a connector: its old app, to be deleted. */
    migratedFrom: z
      .object({ legacyClientId: guid('migratedFrom.legacyClientId'), at: z.iso.datetime({ offset: true, message: 'migratedFrom.at must be an ISO 8601 date-time' }) })
      .strict()
      .optional(),
    /** Token authority; connectors override it with their own cloud's. */
    authorityHost: httpsBaseUrl('authorityHost').default(defaultAuthorityHost),
    graphBaseUrl: httpsBaseUrl('graphBaseUrl').default(defaultGraphBaseUrl),
    /** Extra CA trusted for the authority and Graph connections only (private clouds, test emulators). */
    caPem: pemCertificates('caPem').optional(),
    /** Records per Graph page (`Prefer: odata.maxpagesize`). */
    pageSize: int('pageSize', 1, 999).default(999),
    retry: retrySchema.default(defaultRetry),
    /** Longest silence while a Graph request waits for its answer. */
    requestTimeoutMs: int('requestTimeoutMs', 1_000, 600_000).default(120_000),
    /** Which Graph properties land in which fields (absent: the default mapping). */
    attributeMapping: attributeMappingSchema.optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    refineAttributeMapping(graphMappingRules, s.attributeMapping, ctx);
    const hasConnector = s.connectorId !== undefined;
    const hasLegacy = s.legacyApp !== undefined;
    if (hasConnector === hasLegacy) {
      ctx.addIssue({
        code: 'custom',
        path: ['connectorId'],
        message: 'name exactly one of connectorId (a connector) and legacyApp.clientId (a legacy app registration)',
      });
    }
  });

/** Validated Entra ID settings (defaults applied). */
export type EntraIdSettings = z.output<typeof entraIdSettingsSchema>;
/** Entra ID settings as written (defaults optional). */
export type EntraIdSettingsInput = z.input<typeof entraIdSettingsSchema>;
