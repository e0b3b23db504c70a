import type { MappingRule } from '@dirsync/contracts';
import type { MappedType } from './engine.ts';

/**
 * One field of a kind's default mapping: a plain rule (what an override could write as well),
 * or a computed field whose value the provider derives (`computed` says how). Either way `from`
 * lists the source attributes it reads.
 */
export type DefaultField =
  | { readonly field: string; readonly rule: MappingRule }
  | { readonly field: string; readonly from: readonly string[]; readonly computed: string };

/** A kind's default mapping, by object type, in the order the provider writes the fields. */
export type DefaultMapping = Partial<Record<MappedType, readonly DefaultField[]>>;

const first = (field: string, from: string): DefaultField => ({ field, rule: { from } });
const all = (field: string, from: string): DefaultField => ({ field, rule: { from, transform: [] } });

/**
 * Generic LDAP (`ldap`). Identity: `entryUUID` (lower-cased) as external id; the DN (normalised)
 * as `dn`; group members from the settings' `groups.memberAttributes`.
 */
export const genericLdapDefaultMapping = {
  user: [
    first('cn', 'cn'),
    first('department', 'departmentNumber'),
    first('displayName', 'displayName'),
    first('employeeNumber', 'employeeNumber'),
    first('givenName', 'givenName'),
    first('mail', 'mail'),
    { field: 'otherMails', from: ['mail'], computed: 'the values after the first, as a list (left out when there is one)' },
    first('sn', 'sn'),
    first('telephoneNumber', 'telephoneNumber'),
    first('title', 'title'),
    first('uid', 'uid'),
  ],
  group: [first('cn', 'cn'), first('description', 'description'), first('mail', 'mail')],
} as const satisfies DefaultMapping;

const adPerson = [
  first('displayName', 'displayName'),
  first('givenName', 'givenName'),
  first('sn', 'sn'),
  first('mail', 'mail'),
  first('department', 'department'),
  first('title', 'title'),
  first('company', 'company'),
  first('telephoneNumber', 'telephoneNumber'),
  first('mobile', 'mobile'),
  first('office', 'physicalDeliveryOfficeName'),
] as const;

const adCommonComputed = [
  { field: 'primarySmtpAddress', from: ['proxyAddresses'], computed: 'the address of the "SMTP:" value' },
  { field: 'smtpAliases', from: ['proxyAddresses'], computed: 'the addresses of the "smtp:" values, sorted' },
  { field: 'proxyAddresses', from: ['proxyAddresses'], computed: 'every value, sorted' },
  { field: 'whenCreated', from: ['whenCreated'], computed: 'GeneralizedTime as an ISO 8601 timestamp' },
  { field: 'whenChanged', from: ['whenChanged'], computed: 'GeneralizedTime as an ISO 8601 timestamp' },
] as const;

const objectSid = { field: 'objectSid', from: ['objectSid'], computed: 'the binary SID as text (S-1-5-21-…)' } as const;

/**
 * Active Directory (`active_directory`). Identity: `objectGUID` (as the canonical GUID string);
 * the DN as `dn`; `manager` (the manager's objectGUID) and group members are references.
 */
export const activeDirectoryDefaultMapping = {
  user: [
    first('sAMAccountName', 'sAMAccountName'),
    first('userPrincipalName', 'userPrincipalName'),
    ...adPerson,
    first('employeeId', 'employeeID'),
    first('description', 'description'),
    ...adCommonComputed,
    objectSid,
    { field: 'enabled', from: ['userAccountControl'], computed: 'true unless the ACCOUNTDISABLE bit (0x2) is set' },
    {
      field: 'lockedOut',
      from: ['msDS-User-Account-Control-Computed', 'lockoutTime'],
      computed: 'the LOCKOUT bit (0x10) of msDS-User-Account-Control-Computed, else lockoutTime > 0',
    },
  ],
  contact: [...adPerson, first('description', 'description'), ...adCommonComputed],
  group: [
    first('sAMAccountName', 'sAMAccountName'),
    first('displayName', 'displayName'),
    first('mail', 'mail'),
    first('description', 'description'),
    ...adCommonComputed,
    objectSid,
    { field: 'groupCategory', from: ['groupType'], computed: '"security" when bit 0x80000000 is set, else "distribution"' },
    { field: 'groupScope', from: ['groupType'], computed: '"builtinLocal", "global", "domainLocal" or "universal" from its scope bits' },
  ],
} as const satisfies DefaultMapping;

const dominoNamesAndMail = [
  first('displayName', 'cn'),
  all('cn', 'cn'),
  first('mail', 'mail'),
  { field: 'otherMails', from: ['mail'], computed: 'the values after the first, as a list (left out when there is one)' },
] as const;

/**
 * HCL Domino (`domino`). Identity: `dominoUNID` (upper case); the DN as `dn`; group members from
 * the settings' member attributes.
 */
export const dominoDefaultMapping = {
  user: [
    ...dominoNamesAndMail,
    first('uid', 'uid'),
    all('shortNames', 'uid'),
    first('givenName', 'givenName'),
    first('sn', 'sn'),
    first('title', 'title'),
    first('telephoneNumber', 'telephoneNumber'),
    first('mailDomain', 'mailDomain'),
    first('mailServer', 'mailServer'),
    first('mailFile', 'mailFile'),
  ],
  group: [...dominoNamesAndMail, first('description', 'description')],
} as const satisfies DefaultMapping;

const graphBoolean = (field: string): DefaultField => ({ field, from: [field], computed: 'the boolean as is' });
const graphList = (field: string): DefaultField => ({ field, from: [field], computed: 'every value, sorted' });

/**
 * Microsoft Entra ID (`entra_id`). Identity: the Graph object `id` (lower-cased); no DN; group
 * members by id. Every field has the name of its Graph property.
 */
export const entraIdDefaultMapping = {
  user: [
    first('userPrincipalName', 'userPrincipalName'),
    first('mail', 'mail'),
    first('displayName', 'displayName'),
    first('givenName', 'givenName'),
    first('surname', 'surname'),
    graphBoolean('accountEnabled'),
    first('department', 'department'),
    first('jobTitle', 'jobTitle'),
    graphList('proxyAddresses'),
    first('onPremisesImmutableId', 'onPremisesImmutableId'),
    first('employeeId', 'employeeId'),
  ],
  group: [
    first('displayName', 'displayName'),
    first('description', 'description'),
    first('mail', 'mail'),
    graphBoolean('mailEnabled'),
    first('mailNickname', 'mailNickname'),
    graphBoolean('securityEnabled'),
    graphList('groupTypes'),
  ],
} as const satisfies DefaultMapping;

/** The default mapping of each provider kind, by kind name. */
export const defaultMappings = {
  ldap: genericLdapDefaultMapping,
  active_directory: activeDirectoryDefaultMapping,
  domino: dominoDefaultMapping,
  entra_id: entraIdDefaultMapping,
} as const satisfies Record<string, DefaultMapping>;

/**
 * Canonical field ← source attribute (lower-cased) of the plain first-value fields of a default
 * table, in its order: what the LDAP providers' map functions copy.
 */
export function firstValueFields(fields: readonly DefaultField[]): (readonly [string, string])[] {
  return fields.flatMap((f) => ('rule' in f && f.rule.transform === undefined ? [[f.field, f.rule.from.toLowerCase()] as const] : []));
}
