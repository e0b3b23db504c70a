import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { and, asc, eq, getTableColumns, isNull, lt, or, sql } from 'drizzle-orm';
import type { Db } from './client.ts';
import { InvalidInputError, NotFoundError, pgCodes, pgErrorOf } from './errors.ts';
import { isUuid } from './ids.ts';
import { apiKeys, apiScopes } from './schema-api.ts';

/** A permission of an API key: `read`, `sync` or `admin` (which includes the other two). */
export type ApiScope = (typeof apiScopes)[number];

/** An API key as every reader sees it: never the token nor its hash. */
export type ApiKey = Omit<typeof apiKeys.$inferSelect, 'tokenHash' | 'scopes'> & { scopes: ApiScope[] };

/** Input of {@link createApiKey}. */
export interface NewApiKey {
  /** The account the key acts for; `null` makes a platform key (queue dashboard only). */
  accountId: string | null;
  name: string;
  scopes: readonly ApiScope[];
  createdBy?: string;
}

/** What {@link createApiKey} returns: the stored key and its token, which is never shown again. */
export interface CreatedApiKey {
  apiKey: ApiKey;
  token: string;
}

/** Tokens look like `dsk_<lookup id>_<secret>`; the prefix lets secret scanners recognise them. */
export const apiTokenPrefix = 'dsk_';

const tokenPattern = /^dsk_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

// A stored last-use time younger than this is not rewritten: a busy key would otherwise cost a
// write per request.
const lastUsedResolutionMs = 60_000;

const { tokenHash: _hash, ...publicColumns } = getTableColumns(apiKeys);

function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

function toApiKey(row: Omit<typeof apiKeys.$inferSelect, 'tokenHash'>): ApiKey {
  return { ...row, scopes: row.scopes.filter((s): s is ApiScope => (apiScopes as readonly string[]).includes(s)) };
}

/**
 * Parses a comma-separated scope list (`read,sync`). Throws {@link InvalidInputError} naming the
 * unknown scopes; an empty list is refused too.
 */
export function parseApiScopes(text: string): ApiScope[] {
  const wanted = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const unknown = wanted.filter((s) => !(apiScopes as readonly string[]).includes(s));
  if (unknown.length > 0) throw new InvalidInputError(`unknown scope ${unknown.map((s) => `"${s}"`).join(', ')}: use ${apiScopes.join(', ')}`);
  if (wanted.length === 0) throw new InvalidInputError(`at least one scope is needed (${apiScopes.join(', ')})`);
  return [...new Set(wanted as ApiScope[])];
}

/** True when a key with `scopes` may do what `required` allows (`admin` allows everything). */
export function scopeAllows(scopes: readonly ApiScope[], required: ApiScope): boolean {
  return scopes.includes(required) || scopes.includes('admin');
}

/**
 * Creates an API key and returns its token, the only time it is available: only its SHA-256 is
 * stored (the token carries 256 random bits, so a fast hash is enough). Throws
 * {@link NotFoundError} when the account does not exist, {@link InvalidInputError} for an empty
 * name or scope list.
 */
export async function createApiKey(db: Db, input: NewApiKey): Promise<CreatedApiKey> {
  const name = input.name.trim();
  if (name === '') throw new InvalidInputError('API key name must not be empty');
  if (input.scopes.length === 0) throw new InvalidInputError(`at least one scope is needed (${apiScopes.join(', ')})`);
  if (input.accountId !== null && !isUuid(input.accountId)) throw new NotFoundError('account not found');
  const lookupId = randomBytes(8).toString('hex');
  const token = `${apiTokenPrefix}${lookupId}_${randomBytes(32).toString('base64url')}`;
  try {
    const [row] = await db
      .insert(apiKeys)
      .values({
        accountId: input.accountId,
        name,
        lookupId,
        tokenHash: hashToken(token).toString('hex'),
        scopes: [...new Set(input.scopes)],
        createdBy: input.createdBy ?? null,
      })
      .returning(publicColumns);
    if (!row) throw new Error('insert returned no row');
    return { apiKey: toApiKey(row), token };
  } catch (error) {
    if (pgErrorOf(error)?.code === pgCodes.foreignKeyViolation) throw new NotFoundError('account not found');
    throw error;
  }
}

/**
 * The live (not revoked) key a token belongs to, or undefined for anything else: malformed,
 * unknown, revoked, or a wrong secret (compared in constant time). Records the use, at most
 * once a minute per key.
 */
export async function authenticateApiKey(db: Db, token: string): Promise<ApiKey | undefined> {
  const match = tokenPattern.exec(token);
  if (!match) return undefined;
  const [row] = await db
    .select({ ...publicColumns, tokenHash: apiKeys.tokenHash })
    .from(apiKeys)
    .where(and(eq(apiKeys.lookupId, match[1] ?? ''), isNull(apiKeys.revokedAt)));
  if (!row) return undefined;
  const { tokenHash, ...key } = row;
  const expected = Buffer.from(tokenHash, 'hex');
  const actual = hashToken(token);
  if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) return undefined;
  if (key.lastUsedAt === null || Date.now() - key.lastUsedAt.getTime() > lastUsedResolutionMs) {
    await db
      .update(apiKeys)
      .set({ lastUsedAt: sql`now()` })
      .where(
        and(
          eq(apiKeys.id, key.id),
          or(isNull(apiKeys.lastUsedAt), lt(apiKeys.lastUsedAt, sql`now() - make_interval(secs => ${lastUsedResolutionMs / 1000})`)),
        ),
      );
  }
  return toApiKey(key);
}

/** API keys (revoked ones too), of one account, of the platform (`accountId: null`), or all. */
export async function listApiKeys(db: Db, filter: { accountId?: string | null } = {}): Promise<ApiKey[]> {
  if (typeof filter.accountId === 'string' && !isUuid(filter.accountId)) return [];
  const where =
    filter.accountId === undefined ? undefined : filter.accountId === null ? isNull(apiKeys.accountId) : eq(apiKeys.accountId, filter.accountId);
  const rows = await db.select(publicColumns).from(apiKeys).where(where).orderBy(asc(apiKeys.createdAt), asc(apiKeys.id));
  return rows.map(toApiKey);
}

/**
 * Revokes a key at once (its next request is refused). Revoking a revoked key keeps the first
 * revocation time. Throws {@link NotFoundError}.
 */
export async function revokeApiKey(db: Db, id: string): Promise<ApiKey> {
  if (!isUuid(id)) throw new NotFoundError(`API key ${id} not found`);
  const [row] = await db
    .update(apiKeys)
    .set({ revokedAt: sql`coalesce(${apiKeys.revokedAt}, now())` })
    .where(eq(apiKeys.id, id))
    .returning(publicColumns);
  if (!row) throw new NotFoundError(`API key ${id} not found`);
  return toApiKey(row);
}
