import { type ConsoleGrant, type ConsoleRole, isConsoleRole } from '@dirsync/db';

/** Default name of the claim listing a user's dirsync roles. */
export const defaultRolesClaim = 'dirsync_roles';

/** What a roles claim grants: roles on named accounts, and a role on every account. */
export interface MappedGrants {
  readonly grants: ConsoleGrant[];
  readonly platformRole: ConsoleRole | null;
  /** Entries naming no known account or role, or not of the form `<account>:<role>`. */
  readonly ignored: number;
}

const rank: Record<ConsoleRole, number> = { viewer: 0, operator: 1, admin: 2 };

/** The claim's entries: an array of strings, or one space-separated string. */
function entriesOf(value: unknown): string[] {
  if (typeof value === 'string') return value.split(/\s+/).filter((entry) => entry !== '');
  if (Array.isArray(value)) return value.filter((entry): entry is string => typeof entry === 'string').map((entry) => entry.trim());
  return [];
}

/**
 * Maps a roles claim (`["acme:operator", "*:viewer"]`) to grants on the accounts it names.
 * `*:<role>` gives that role on every account (a platform operator). Unknown accounts and roles
 * are ignored; an account named twice keeps its highest role.
 */
export function mapRolesClaim(value: unknown, accounts: ReadonlyArray<{ readonly id: string; readonly name: string }>): MappedGrants {
  const byName = new Map(accounts.map((account) => [account.name, account.id]));
  const roles = new Map<string, ConsoleRole>();
  let platformRole: ConsoleRole | null = null;
  let ignored = 0;
  for (const entry of entriesOf(value)) {
    // Account names may hold a colon; roles never do.
    const colon = entry.lastIndexOf(':');
    const name = colon < 0 ? '' : entry.slice(0, colon).trim();
    const role = colon < 0 ? '' : entry.slice(colon + 1).trim().toLowerCase();
    if (name === '' || !isConsoleRole(role)) {
      ignored += 1;
      continue;
    }
    if (name === '*') {
      if (platformRole === null || rank[role] > rank[platformRole]) platformRole = role;
      continue;
    }
    const accountId = byName.get(name);
    if (accountId === undefined) {
      ignored += 1;
      continue;
    }
    const current = roles.get(accountId);
    if (current === undefined || rank[role] > rank[current]) roles.set(accountId, role);
  }
  return { grants: [...roles].map(([accountId, role]) => ({ accountId, role })), platformRole, ignored };
}
