import { attributeMappingSchema } from '@dirsync/contracts';
import { z } from 'zod';
import { genericLdapSettingsSchema } from '../ldap-generic/config.ts';
import { normalizeDn, parseDn } from '../ldap/dn.ts';
import { boundedInt, nestedBaseProblems, tlsProblems } from '../ldap/settings.ts';
import { ldapMappingRules, refineAttributeMapping } from '../mapping/kinds.ts';

// Connection fields and the shape of the users/groups sections mean the same as for any LDAP
// directory: the generic provider's definitions, with Domino's object classes as defaults.
const generic = genericLdapSettingsSchema.shape;

/**
 * A Domino base DN. Unlike other kinds, `""` (the directory root) is allowed: Domino keeps
 * groups as `CN=Sales` directly under the root, with no container to name.
 */
const dominoBase = (what: string) =>
  z.string({ error: `${what} must be a string` }).superRefine((value, ctx) => {
    if (value === '') return;
    if (value.trim() === '') {
      ctx.addIssue({ code: 'custom', message: `${what} is blank; write "" for the directory root` });
      return;
    }
    try {
      parseDn(value);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `${what} is not a valid DN: ${error instanceof Error ? error.message : String(error)}` });
    }
  });

/**
 * How deep a section's searches reach below each base: `one` (the entries directly under it) or
 * `sub` (the whole subtree). Optional: see {@link dominoScopeOf} for the default.
 */
const scopeSchema = (key: string) => z.enum(['one', 'sub'], { error: `${key}.scope must be "one" or "sub"` }).optional();

/** True for the directory root (`""`, the empty DN). */
function isRoot(base: string): boolean {
  try {
    return normalizeDn(base) === '';
  } catch {
    return false;
  }
}

/**
 * The search scope of a users or groups section: as set, else `one` when a base is the directory
 * root (a subtree search of the root would read every entry of the directory, people
 * and server documents included, to find the groups beside them) and `sub` otherwise.
 */
export function dominoScopeOf(section: { readonly baseDns: readonly string[]; readonly scope?: 'one' | 'sub' | undefined }): 'one' | 'sub' {
  return section.scope ?? (section.baseDns.some(isRoot) ? 'one' : 'sub');
}

/**
 * Settings of a Domino Directory integration, as stored in `integrations.settings`. The bind
 * password is the integration's secret, not a setting.
 */
export const dominoSettingsSchema = z
  .object({
    url: generic.url,
    bindDn: generic.bindDn,
    tls: generic.tls,
    users: generic.users.extend({
      baseDns: z.array(dominoBase('users base DN')).min(1, 'users.baseDns needs at least one base DN'),
      scope: scopeSchema('users'),
      objectClasses: generic.users.shape.objectClasses.unwrap().default(['dominoPerson']),
    }),
    groups: generic.groups.extend({
      baseDns: z.array(dominoBase('groups base DN')).min(1, 'groups.baseDns needs at least one base DN'),
      scope: scopeSchema('groups'),
      objectClasses: generic.groups.shape.objectClasses.unwrap().default(['dominoGroup']),
      memberAttributes: generic.groups.shape.memberAttributes.unwrap().default(['member']),
    }),
    /** Entries per page when the server pages. */
    pageSize: boundedInt('pageSize', 1, 100_000).default(500),
    /**
     * `auto`: page when the root DSE lists the paged results control (and fall back to split
     * searches when the server refuses or caps it); `never`: always split.
     */
    paging: z.enum(['auto', 'never'], { error: 'paging must be "auto" or "never"' }).default('auto'),
    /** Attribute whose first characters split a search the server's size limit cuts short. */
    splitAttribute: z.string().regex(/^[A-Za-z][A-Za-z0-9-]*$/, 'splitAttribute must be an attribute name').default('cn'),
    /**
     * `auto`: deltas read entries with a newer modifyTimestamp when the server shows it, else
     * read everything and write what changed (hash comparison); `hash`: always the latter.
     */
    deltaMethod: z.enum(['auto', 'hash'], { error: 'deltaMethod must be "auto" or "hash"' }).default('auto'),
    /** How far before the last high-water mark a modifyTimestamp delta starts reading again. */
    deltaOverlapSeconds: boundedInt('deltaOverlapSeconds', 0, 86_400).default(300),
    timeouts: generic.timeouts,
    limits: generic.limits,
    /** Which source attributes land in which fields (absent: the default mapping). */
    attributeMapping: attributeMappingSchema.optional(),
  })
  .strict()
  .superRefine(
    (s, ctx) => {
      for (const problem of tlsProblems(s)) ctx.addIssue({ code: 'custom', ...problem });
      for (const key of ['users', 'groups'] as const) {
        const section = s?.[key] as { baseDns?: unknown; scope?: unknown } | undefined;
        const bases = Array.isArray(section?.baseDns) ? section.baseDns : undefined;
        const strings = (bases ?? []).filter((b): b is string => typeof b === 'string');
        const scope = section?.scope === 'one' || section?.scope === 'sub' ? section.scope : undefined;
        const effective = dominoScopeOf({ baseDns: strings, scope });
        for (const message of nestedBaseProblems(bases, effective)) ctx.addIssue({ code: 'custom', path: [key, 'baseDns'], message });
        // Refused rather than honoured: one setting would make every sync read the whole
        // directory (under a size limit, split by split) to keep a few entries.
        if (scope === 'sub' && strings.some(isRoot)) {
          ctx.addIssue({
            code: 'custom',
            path: [key, 'scope'],
            message: `${key}.scope "sub" with the directory root ("") as a base would read every entry of the directory; use scope "one" (the default for the root) or name the containers to read`,
          });
        }
      }
      refineAttributeMapping(ldapMappingRules(['user', 'group'], []), s?.attributeMapping, ctx);
    },
    { when: () => true },
  );

/** Validated Domino settings, defaults applied. */
export type DominoSettings = z.output<typeof dominoSettingsSchema>;

/** Domino settings as an administrator writes them. */
export type DominoSettingsInput = z.input<typeof dominoSettingsSchema>;
