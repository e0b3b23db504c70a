import { attributeMappingSchema } from '@dirsync/contracts';
import { z } from 'zod';
import { genericLdapSettingsSchema } from '../ldap-generic/config.ts';
import { boundedInt, dnString, filterString, nestedBaseProblems, tlsProblems } from '../ldap/settings.ts';
import { ldapMappingRules, refineAttributeMapping } from '../mapping/kinds.ts';

/** Object types an Active Directory integration can sync. */
export const adObjectTypes = ['user', 'group', 'contact'] as const;

/** The kind of object an AD search selects. */
export type AdObjectType = (typeof adObjectTypes)[number];

// Connection fields mean the same for every LDAP directory: the generic provider's definitions.
const connection = genericLdapSettingsSchema.shape;

/**
 * Settings of an Active Directory integration, as stored in `integrations.settings`. The bind
 * password is the integration's secret, not a setting.
 */
export const activeDirectorySettingsSchema = z
  .object({
    /** `ldaps://dc.example.com` (default) or `ldap://…` with StartTLS. */
    url: connection.url,
    /** DN of the read-only service account. */
    bindDn: connection.bindDn,
    tls: connection.tls,
    /** OUs (or the domain) whose users, groups and contacts are synced; subtrees. */
    baseDns: z.array(dnString('base DN')).min(1, 'baseDns needs at least one base DN'),
    /** Only objects matching this filter are synced (ANDed to the type filters). */
    filter: filterString('filter').optional(),
    /** Objects matching this filter are left out. */
    excludeFilter: filterString('excludeFilter').optional(),
    objectTypes: z
      .array(z.enum(adObjectTypes, { error: 'objectTypes must list "user", "group" and/or "contact"' }))
      .min(1, 'objectTypes needs at least one of "user", "group", "contact"')
      .default([...adObjectTypes]),
    /** Entries per page (AD caps pages at MaxPageSize, 1,000 by default). */
    pageSize: boundedInt('pageSize', 1, 5000).default(500),
    /**
     * Member values per request (`member;range=0-N`). Absent: ask for all and let the DC cap the
     * answer at its MaxValRange (1,500 by default), then read the following ranges.
     */
    rangeSize: boundedInt('rangeSize', 1, 100_000).optional(),
    /**
     * How deltas find changes: `usn` (uSNChanged above the cursor and tombstones; any reader can)
     * or `dirsync` (the DirSync control; needs the Replicating Directory Changes right).
     */
    deltaMethod: z.enum(['usn', 'dirsync'], { error: 'deltaMethod must be "usn" or "dirsync"' }).default('usn'),
    timeouts: connection.timeouts,
    limits: connection.limits,
    /** Which source attributes land in which fields (absent: the default mapping). */
    attributeMapping: attributeMappingSchema.optional(),
  })
  .strict()
  .superRefine(
    (s, ctx) => {
      // Runs even when fields failed, so every problem is reported at once: shapes are checked first.
      for (const problem of tlsProblems(s)) ctx.addIssue({ code: 'custom', ...problem });
      const bases = Array.isArray(s?.baseDns) ? s.baseDns : undefined;
      for (const message of nestedBaseProblems(bases)) ctx.addIssue({ code: 'custom', path: ['baseDns'], message });
      // member and the backlinks are read by ranges (deltas only, for the backlinks) and resolved
      // as references: a mapping copying them would read every group's members into each object.
      refineAttributeMapping(ldapMappingRules(adObjectTypes, ['member', 'memberOf', 'directReports']), s?.attributeMapping, ctx);
    },
    { when: () => true },
  );

/** Validated Active Directory settings, defaults applied. */
export type ActiveDirectorySettings = z.output<typeof activeDirectorySettingsSchema>;

/** Active Directory settings as an administrator writes them. */
export type ActiveDirectorySettingsInput = z.input<typeof activeDirectorySettingsSchema>;
