import { type AttributeMapping, MAPPING_SOURCE_NAME } from '@dirsync/contracts';
import type { z } from 'zod';
import type { MappedType } from './engine.ts';

/**
 * Fields no mapping may set: the object's identity and type, the DN that member references are
 * resolved against, membership and manager references (resolved by the pipeline, not copied),
 * and `extra` (the extras' own place).
 */
export const structuralFields = ['externalId', 'id', 'dn', 'type', 'objectType', 'members', 'memberOf', 'directReports', 'manager', 'managerDn', 'extra'] as const;

const structural: ReadonlySet<string> = new Set(structuralFields.map((f) => f.toLowerCase()));

/**
 * Attributes that hold passwords, password hashes or keys (OpenLDAP, Active Directory with LAPS
 * and BitLocker, Samba, Kerberos, Domino). The bind account may be allowed to read some of them;
 * a mapping would store them with the objects and hand them to every reader of the API.
 */
export const credentialSources = [
  'userPassword', 'authPassword', 'pwdHistory', 'userPKCS12',
  'unicodePwd', 'dBCSPwd', 'ntPwdHistory', 'lmPwdHistory', 'supplementalCredentials', 'currentValue', 'priorValue',
  'trustAuthIncoming', 'trustAuthOutgoing', 'initialAuthIncoming', 'initialAuthOutgoing',
  'ms-Mcs-AdmPwd', 'msLAPS-Password', 'msLAPS-EncryptedPassword', 'msLAPS-EncryptedPasswordHistory',
  'msLAPS-EncryptedDSRMPassword', 'msLAPS-EncryptedDSRMPasswordHistory', 'msDS-ManagedPassword',
  'msFVE-RecoveryPassword', 'msFVE-KeyPackage', 'msTPM-OwnerInformation',
  'sambaNTPassword', 'sambaLMPassword', 'sambaPasswordHistory', 'krbPrincipalKey', 'krbExtraData',
  'HTTPPassword',
] as const;

const credential: ReadonlySet<string> = new Set(credentialSources.map((s) => s.toLowerCase()));

/** What a kind allows in a mapping, beside the shared schema. */
export interface MappingKindRules {
  /** Object types the kind syncs (a mapping section for another type is refused). */
  readonly types: readonly MappedType[];
  /** Source attributes the kind can read, and how to say so when a name is refused. */
  readonly sourceName: RegExp;
  readonly sourceHint: string;
  /** Source attributes that hold identity or references (reading them through a mapping is refused). */
  readonly refusedSources: readonly string[];
  /**
   * Longest list of source names (comma-separated) one object type's mapping may add to the
   * request: Graph's `$select` travels in the URL, which Graph and proxies bound.
   */
  readonly maxAddedSourceChars?: number;
}

/** LDAP attribute descriptions without options (`mail`, `msDS-cloudExtensionAttribute1`). */
export const ldapMappingRules = (types: readonly MappedType[], refusedSources: readonly string[]): MappingKindRules => ({
  types,
  sourceName: /^[A-Za-z][A-Za-z0-9-]{0,63}$/,
  sourceHint: 'an LDAP attribute name (a letter, then letters, digits or "-"; at most 64 characters; no options such as ";binary")',
  refusedSources,
});

/** Graph property names, directory extensions (`extension_<app id>_<name>`) included. */
export const graphMappingRules: MappingKindRules = {
  types: ['user', 'group'],
  sourceName: /^[A-Za-z][A-Za-z0-9_]{0,119}$/,
  sourceHint: 'a Microsoft Graph property name (letters, digits or "_")',
  refusedSources: ['id', 'members', 'manager', 'memberOf', 'transitiveMemberOf', 'directReports', 'owners'],
  // With the default properties and the host, the request URL stays well under 2,048 characters.
  maxAddedSourceChars: 1000,
};

/**
 * Kind-specific checks of `settings.attributeMapping`, run in a settings schema's `superRefine`
 * (the shape was checked by `attributeMappingSchema`); issues carry the field's path
 * (`attributeMapping.user.mail.from`).
 */
export function refineAttributeMapping(rules: MappingKindRules, mapping: unknown, ctx: z.RefinementCtx): void {
  if (typeof mapping !== 'object' || mapping === null) return;
  const m = mapping as AttributeMapping;
  const refused = new Set(rules.refusedSources.map((s) => s.toLowerCase()));
  const checkSection = (section: Record<string, unknown> | undefined, path: readonly (string | number)[], isExtra: boolean) => {
    if (typeof section !== 'object' || section === null) return;
    for (const [field, rule] of Object.entries(section)) {
      if (!isExtra && structural.has(field.toLowerCase())) {
        ctx.addIssue({
          code: 'custom',
          path: [...path, field],
          message: `"${field}" is structural (identity, DN, object type, members or manager references) and cannot be mapped; add it under extra with another name instead`,
        });
        continue;
      }
      const from = typeof rule === 'object' && rule !== null ? (rule as { from?: unknown }).from : undefined;
      // A name the shared schema refused already has its problem.
      if (typeof from !== 'string' || !MAPPING_SOURCE_NAME.test(from)) continue;
      if (!rules.sourceName.test(from)) ctx.addIssue({ code: 'custom', path: [...path, field, 'from'], message: `must be ${rules.sourceHint}` });
      else if (refused.has(from.toLowerCase())) {
        ctx.addIssue({ code: 'custom', path: [...path, field, 'from'], message: `"${from}" holds identity or references, which the mapping cannot read` });
      } else if (credential.has(from.toLowerCase())) {
        ctx.addIssue({ code: 'custom', path: [...path, field, 'from'], message: `"${from}" holds passwords or keys, which a mapping never copies` });
      }
    }
  };
  for (const type of ['user', 'group', 'contact'] as const) {
    const allowed = rules.types.includes(type);
    if (allowed && rules.maxAddedSourceChars !== undefined) {
      const rulesOfType = [...Object.values(m[type] ?? {}), ...Object.values(m.extra?.[type] ?? {})] as unknown[];
      const names = new Set(rulesOfType.flatMap((r) => (typeof r === 'object' && r !== null && typeof (r as { from?: unknown }).from === 'string' ? [(r as { from: string }).from] : [])));
      const chars = [...names].join(',').length;
      if (chars > rules.maxAddedSourceChars) {
        ctx.addIssue({
          code: 'custom',
          path: ['attributeMapping', type],
          message: `the ${type} rules read ${names.size} properties (${chars} characters of $select), more than ${rules.maxAddedSourceChars}: read fewer`,
        });
      }
    }
    if (m[type] !== undefined) {
      if (!allowed) ctx.addIssue({ code: 'custom', path: ['attributeMapping', type], message: `this kind syncs no ${type}s (it has ${rules.types.join(', ')})` });
      else checkSection(m[type], ['attributeMapping', type], false);
    }
    const extra = m.extra?.[type];
    if (extra !== undefined) {
      if (!allowed) ctx.addIssue({ code: 'custom', path: ['attributeMapping', 'extra', type], message: `this kind syncs no ${type}s (it has ${rules.types.join(', ')})` });
      else checkSection(extra, ['attributeMapping', 'extra', type], true);
    }
  }
}
