import { X509Certificate } from 'node:crypto';
import { attributeMappingSchema } from '@dirsync/contracts';
import { z } from 'zod';
import { parseLdapUrl } from '../ldap/connection.ts';
import { isDnWithin, normalizeDn, parseDn } from '../ldap/dn.ts';
import { parseFilter } from '../ldap/filter.ts';
import { ldapMappingRules, refineAttributeMapping } from '../mapping/kinds.ts';

const attributeName = /^[A-Za-z][A-Za-z0-9-]*$/;

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const dn = (what: string) =>
  z.string({ error: `${what} must be a string` }).superRefine((value, ctx) => {
    if (value.trim() === '') {
      ctx.addIssue({ code: 'custom', message: `${what} is empty` });
      return;
    }
    try {
      parseDn(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `${what} is not a valid DN: ${reason(error)}` });
    }
  });

const filter = (what: string) =>
  z.string({ error: `${what} must be a string` }).superRefine((value, ctx) => {
    try {
      parseFilter(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `${what}: ${reason(error)}` });
    }
  });

const names = (what: string) =>
  z.array(z.string().regex(attributeName, `${what} must be attribute or object class names (letters, digits, hyphens)`));

const pemCertificates = z.string().superRefine((value, ctx) => {
  const blocks = value.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'tls.caPem must hold one or more PEM certificates (-----BEGIN CERTIFICATE-----)' });
    return;
  }
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `tls.caPem certificate ${i + 1} cannot be read: ${reason(error)}` });
    }
  });
});

const int = (what: string, min: number, max: number) =>
  z
    .number({ error: `${what} must be a number` })
    .int(`${what} must be a whole number`)
    .min(min, `${what} must be at least ${min}`)
    .max(max, `${what} must be at most ${max}`);

const tlsSchema = z
  .object({
    /** Default: `ldaps` for an ldaps:// URL, `starttls` for ldap://. */
    mode: z.enum(['ldaps', 'starttls', 'none'], { error: 'tls.mode must be "ldaps", "starttls" or "none"' }).optional(),
    caPem: pemCertificates.optional(),
    allowInsecure: z.boolean().default(false),
    serverName: z.string().min(1).optional(),
  })
  .strict();

const usersSchema = z
  .object({
    baseDns: z.array(dn('users base DN')).min(1, 'users.baseDns needs at least one base DN'),
    filter: filter('users.filter').optional(),
    objectClasses: names('users.objectClasses').default(['inetOrgPerson']),
  })
  .strict();

const groupsSchema = z
  .object({
    baseDns: z.array(dn('groups base DN')).min(1, 'groups.baseDns needs at least one base DN'),
    filter: filter('groups.filter').optional(),
    objectClasses: names('groups.objectClasses').default(['groupOfNames', 'groupOfUniqueNames']),
    memberAttributes: names('groups.memberAttributes').min(1).default(['member', 'uniqueMember']),
  })
  .strict();

const timeoutsSchema = z
  .object({
    connectMs: int('timeouts.connectMs', 100, 300_000).default(10_000),
    operationMs: int('timeouts.operationMs', 1_000, 3_600_000).default(120_000),
    searchTimeLimitSeconds: int('timeouts.searchTimeLimitSeconds', 0, 86_400).default(600),
  })
  .strict();

/**
 * Bounds on what one server may make a worker hold. The largest message is sized for a big group
 * read in one entry (a million 60-byte member DNs fit in 64 MiB; AD ranges its values anyway); the
 * ceiling keeps one integration from claiming most of a worker that serves every customer.
 */
const limitsSchema = z
  .object({
    maxMessageMiB: int('limits.maxMessageMiB', 1, 256).default(64),
  })
  .strict();

function nestedBases(bases: readonly string[]): string[] {
  const problems: string[] = [];
  let normalized: string[];
  try {
    normalized = bases.map((b) => normalizeDn(b));
  } catch {
    return problems;
  }
  normalized.forEach((b, i) =>
    normalized.forEach((other, j) => {
      if (i !== j && isDnWithin(b, other) && (b !== other || i > j)) {
        problems.push(`base DN "${bases[i]}" ${b === other ? 'is listed twice' : `lies within "${bases[j]}"`}; entries would be read twice`);
      }
    }),
  );
  return problems;
}

/**
 * Settings of a generic LDAP integration (OpenLDAP and other RFC 4512 directories), as stored in
 * `integrations.settings`. The bind password is not here: it is the integration's secret.
 */
export const genericLdapSettingsSchema = z
  .object({
    url: z.string({ error: 'url must be a string such as ldaps://ldap.example.com' }).superRefine((value, ctx) => {
      try {
        parseLdapUrl(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: reason(error) });
      }
    }),
    bindDn: dn('bindDn'),
    tls: tlsSchema.default({ allowInsecure: false }),
    users: usersSchema,
    groups: groupsSchema,
    pageSize: int('pageSize', 1, 100_000).default(1000),
    timeouts: timeoutsSchema.default({ connectMs: 10_000, operationMs: 120_000, searchTimeLimitSeconds: 600 }),
    limits: limitsSchema.default({ maxMessageMiB: 64 }),
    /** How far before the last high-water mark a delta starts reading again (in-flight and same-second writes). */
    deltaOverlapSeconds: int('deltaOverlapSeconds', 0, 86_400).default(300),
    /** Which source attributes land in which fields (absent: the default mapping). */
    attributeMapping: attributeMappingSchema.optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    // Runs even when fields failed, so every problem is reported at once: check shapes first.
    const url = typeof s?.url === 'string' ? s.url : undefined;
    let scheme: 'ldap' | 'ldaps' | undefined;
    if (url !== undefined) {
      try {
        scheme = parseLdapUrl(url).secure ? 'ldaps' : 'ldap';
      } catch {
        scheme = undefined;
      }
    }
    const tls = typeof s?.tls === 'object' && s.tls !== null ? s.tls : undefined;
    const mode = tls?.mode;
    if (scheme === 'ldaps' && mode !== undefined && mode !== 'ldaps') {
      ctx.addIssue({ code: 'custom', path: ['tls', 'mode'], message: `an ldaps:// URL needs tls.mode "ldaps", not "${mode}"` });
    }
    if (scheme === 'ldap' && mode === 'ldaps') {
      ctx.addIssue({ code: 'custom', path: ['tls', 'mode'], message: 'tls.mode "ldaps" needs an ldaps:// URL' });
    }
    if (mode === 'none' && tls?.allowInsecure !== true) {
      ctx.addIssue({
        code: 'custom',
        path: ['tls', 'allowInsecure'],
        message: 'tls.mode "none" sends the bind password unencrypted: use ldaps or starttls, or set tls.allowInsecure: true to accept the risk',
      });
    }
    for (const [key, value] of [['users', s?.users], ['groups', s?.groups]] as const) {
      const bases = value && Array.isArray(value.baseDns) ? value.baseDns.filter((b): b is string => typeof b === 'string') : [];
      for (const problem of nestedBases(bases)) ctx.addIssue({ code: 'custom', path: [key, 'baseDns'], message: problem });
    }
    refineAttributeMapping(genericLdapMappingRules, s?.attributeMapping, ctx);
  }, { when: () => true });

/** What a generic LDAP mapping may name: users and groups, any attribute. */
export const genericLdapMappingRules = ldapMappingRules(['user', 'group'], []);

/** Validated settings with defaults applied. */
export type GenericLdapSettings = z.output<typeof genericLdapSettingsSchema>;

/** Settings as an administrator writes them (defaults may be left out). */
export type GenericLdapSettingsInput = z.input<typeof genericLdapSettingsSchema>;

/** The TLS mode in effect: explicit, or derived from the URL scheme (StartTLS for ldap://). */
export function effectiveTlsMode(settings: GenericLdapSettings): 'ldaps' | 'starttls' | 'none' {
  return settings.tls.mode ?? (parseLdapUrl(settings.url).secure ? 'ldaps' : 'starttls');
}
