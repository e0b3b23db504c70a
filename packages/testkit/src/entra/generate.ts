import { createHash } from 'node:crypto';
import type { EmulatedTenantDirectory, NewEmulatedUser } from './directory.ts';

/** Size and shape of a generated Entra tenant. */
export interface EntraTenantSpec {
  readonly users: number;
  readonly groups: number;
  /** Members of every group, users drawn in a deterministic spread (clamped to `users`). */
  readonly membersPerGroup: number;
  /** Same seed, same ids and names. Default 1. */
  readonly seed?: number;
  /** Domain of the generated UPNs and mail addresses. Default `contoso.example`. */
  readonly domain?: string;
}

/** Ids of what {@link populateEntraTenant} created, in creation order. */
export interface GeneratedEntraTenant {
  readonly userIds: readonly string[];
  readonly groupIds: readonly string[];
  readonly memberships: number;
}

const givenNames = ['Ada', 'Alan', 'Grace', 'Linus', 'Margaret', 'Dennis', 'Barbara', 'Ken', 'Radia', 'Zoë', 'José', 'Åsa'];
const surnames = ['Lovelace', 'Turing', 'Hopper', 'Torvalds', 'Hamilton', 'Ritchie', 'Liskov', 'Thompson', 'Müller', 'García'];
const departments = ['Sales', 'Engineering', 'Finance', 'Support', 'Marketing', 'Legal'];
const titles = ['Engineer', 'Manager', 'Director', 'Analyst', 'Designer'];

/** A deterministic UUID (version-4 shaped) for object `index` of `kind` under `seed`. */
export function generatedObjectId(seed: number, kind: 'user' | 'group', index: number): string {
  const hex = createHash('sha1').update(`${seed}:${kind}:${index}`).digest('hex');
  const variant = ((parseInt(hex[16] as string, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** The user `populateEntraTenant` makes for index `i`. */
export function generatedEntraUser(i: number, seed = 1, domain = 'contoso.example'): NewEmulatedUser {
  const given = givenNames[i % givenNames.length] as string;
  const surname = surnames[Math.floor(i / givenNames.length) % surnames.length] as string;
  const name = `user${String(i).padStart(7, '0')}`;
  return {
    id: generatedObjectId(seed, 'user', i),
    userPrincipalName: `${name}@${domain}`,
    displayName: `${given} ${surname} ${i}`,
    givenName: given,
    surname,
    mail: `${name}@${domain}`,
    accountEnabled: i % 50 !== 0,
    department: departments[i % departments.length] as string,
    jobTitle: titles[i % titles.length] as string,
    proxyAddresses: [`SMTP:${name}@${domain}`, `smtp:${given.toLowerCase()}.${i}@${domain}`],
    onPremisesImmutableId: null,
    employeeId: String(100_000 + i),
  };
}

/**
 * Fills an emulated tenant with users and groups whose members are spread over the users, for
 * benchmarks and the demo. Deterministic for a seed.
 */
export function populateEntraTenant(directory: EmulatedTenantDirectory, spec: EntraTenantSpec): GeneratedEntraTenant {
  const seed = spec.seed ?? 1;
  const domain = spec.domain ?? 'contoso.example';
  const users = Array.from({ length: spec.users }, (_, i) => generatedEntraUser(i, seed, domain));
  directory.addUsers(users);
  const userIds = users.map((u) => u.id as string);
  const groupIds: string[] = [];
  const perGroup = Math.min(spec.membersPerGroup, spec.users);
  let memberships = 0;
  for (let g = 0; g < spec.groups; g++) {
    const group = directory.addGroup({
      id: generatedObjectId(seed, 'group', g),
      displayName: `Group ${String(g).padStart(5, '0')}`,
      description: `Generated group ${g}`,
      mail: g % 3 === 0 ? `group${g}@${domain}` : null,
      mailEnabled: g % 3 === 0,
      securityEnabled: g % 3 !== 0,
      groupTypes: g % 3 === 0 ? ['Unified'] : [],
    });
    groupIds.push(group.id);
    if (perGroup === 0) continue;
    // A stride coprime-ish with the user count spreads members without repeats.
    const start = (g * 7919) % spec.users;
    const members: string[] = [];
    for (let k = 0; k < perGroup; k++) members.push(userIds[(start + k * 13) % spec.users] as string);
    const unique = [...new Set(members)];
    directory.addMembers(group.id, unique);
    memberships += unique.length;
  }
  return { userIds, groupIds, memberships };
}
