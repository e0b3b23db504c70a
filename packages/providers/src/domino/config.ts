import { z } from 'zod';
import { genericLdapSettingsSchema } from '../ldap-generic/config.ts';
import { boundedInt, nestedBaseProblems, tlsProblems } from '../ldap/settings.ts';

// Connection fields and the shape of the users/groups sections mean the same as for any LDAP
// directory: the generic provider's definitions, with Domino's object classes as defaults.
const generic = genericLdapSettingsSchema.shape;

/**
 * Settings of a Domino Directory integration, as stored in `integrations.settings`. The bind
 * password is the integration's secret, not a setting.
 */
export const dominoSettingsSchema = z
  .object({
    url: generic.url,
    bindDn: generic.bindDn,
    tls: generic.tls,
    users: generic.users.extend({ objectClasses: generic.users.shape.objectClasses.unwrap().default(['dominoPerson']) }),
    groups: generic.groups.extend({
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
  })
  .strict()
  .superRefine(
    (s, ctx) => {
      for (const problem of tlsProblems(s)) ctx.addIssue({ code: 'custom', ...problem });
      for (const key of ['users', 'groups'] as const) {
        const section = s?.[key] as { baseDns?: unknown } | undefined;
        const bases = Array.isArray(section?.baseDns) ? section.baseDns : undefined;
        for (const message of nestedBaseProblems(bases)) ctx.addIssue({ code: 'custom', path: [key, 'baseDns'], message });
      }
    },
    { when: () => true },
  );

/** Validated Domino settings, defaults applied. */
export type DominoSettings = z.output<typeof dominoSettingsSchema>;

/** Domino settings as an administrator writes them. */
export type DominoSettingsInput = z.input<typeof dominoSettingsSchema>;
