import { randomUUID } from 'node:crypto';
import { and, asc, eq, getTableColumns, isNotNull, isNull, lt, ne, or, sql } from 'drizzle-orm';
import type { Db } from './client.ts';
import {
  ConflictError,
  InvalidInputError,
  NotFoundError,
  pgCodes,
  pgErrorOf,
  SecretDecryptError,
} from './errors.ts';
import { feedWrite } from './changes.ts';
import { integrationSecretAad } from './encrypted-columns.ts';
import { isUuid } from './ids.ts';
import type { IntegrationKind, SyncMode } from '@dirsync/contracts';
import { integrations } from './schema.ts';
import { decryptSecret, encryptSecret, type EncryptedSecret, type KeyRing } from './secrets.ts';

type IntegrationRow = typeof integrations.$inferSelect;

/**
 * An integration as every reader sees it: the secret columns are never returned, only whether
 * a secret is set. Use {@link withIntegrationSecret} to use the secret.
 */
export type Integration = Omit<IntegrationRow, 'secretCiphertext' | 'secretKeyId'> & { hasSecret: boolean };

/** Input of {@link createIntegration}; `settings` must already be validated for its kind. */
export interface NewIntegration {
  accountId: string;
  kind: IntegrationKind;
  name: string;
  description?: string;
  enabled?: boolean;
  settings: Record<string, unknown>;
  deltaCron?: string;
  fullCron?: string;
  deleteThresholdCount?: number;
  deleteThresholdPercent?: number;
}

/** Fields {@link updateIntegration} may change; the kind and account of an integration are fixed. */
export type IntegrationPatch = Partial<
  Pick<
    NewIntegration,
    'name' | 'description' | 'enabled' | 'settings' | 'deltaCron' | 'fullCron' | 'deleteThresholdCount' | 'deleteThresholdPercent'
  >
>;

/** What the scheduler needs to decide whether an integration is due. */
export interface SchedulableIntegration {
  id: string;
  accountId: string;
  kind: IntegrationKind;
  deltaCron: string;
  fullCron: string;
  deltaScheduledFor: Date | null;
  fullScheduledFor: Date | null;
  createdAt: Date;
}

/** Outcome recorded on the integration when a run ends (or starts). */
export interface IntegrationRunMark {
  /** Integration status to show, usually the run's status. */
  status: string;
  lastRunId: string;
  /** True for a successful run: it becomes the last successful run. */
  success?: boolean;
}

const { secretCiphertext: _ciphertext, secretKeyId: _keyId, ...publicColumns } = getTableColumns(integrations);

/** Column selection of the public shape: everything but the secret, plus `hasSecret`. */
const integrationColumns = {
  ...publicColumns,
  hasSecret: sql<boolean>`${integrations.secretCiphertext} is not null`,
};

// Bound to the integration: a ciphertext copied to another row cannot be opened.
const secretAad = integrationSecretAad;

function translateWriteError(error: unknown, name: string | undefined): never {
  const pg = pgErrorOf(error);
  if (pg?.code === pgCodes.uniqueViolation) {
    throw new ConflictError(`an integration named "${name ?? ''}" already exists in this account`);
  }
  if (pg?.code === pgCodes.foreignKeyViolation) throw new NotFoundError('account not found');
  if (pg?.code === pgCodes.checkViolation) {
    throw new InvalidInputError('integration refused: unknown kind, or deletion threshold out of range (count ≥ 0, percent 0–100)');
  }
  throw error;
}

const patchKeys = [
  'name',
  'description',
  'enabled',
  'settings',
  'deltaCron',
  'fullCron',
  'deleteThresholdCount',
  'deleteThresholdPercent',
] as const satisfies readonly (keyof IntegrationPatch)[];

/** Copies only the configuration fields, so stray properties (a status, a secret) cannot be written. */
function configurationOf(source: IntegrationPatch): IntegrationPatch {
  const picked: Record<string, unknown> = {};
  for (const key of patchKeys) if (source[key] !== undefined) picked[key] = source[key];
  return picked as IntegrationPatch;
}

function requireName(name: string): string {
  const trimmed = name.trim();
  if (trimmed === '') throw new InvalidInputError('integration name must not be empty');
  return trimmed;
}

/**
 * Creates an integration, and stores its secret encrypted in the same statement when one is
 * given. Throws {@link ConflictError} when the account already has an integration of that name,
 * {@link NotFoundError} when the account does not exist.
 */
export async function createIntegration(
  db: Db,
  input: NewIntegration,
  secret?: { ring: KeyRing; plaintext: string },
): Promise<Integration> {
  const id = randomUUID();
  const name = requireName(input.name);
  const sealed = secret ? encryptSecret(secret.ring, secret.plaintext, secretAad(id)) : undefined;
  if (!isUuid(input.accountId)) throw new NotFoundError('account not found');
  try {
    const [row] = await db
      .insert(integrations)
      .values({
        ...configurationOf(input),
        id,
        accountId: input.accountId,
        kind: input.kind,
        settings: input.settings,
        name,
        secretCiphertext: sealed?.ciphertext ?? null,
        secretKeyId: sealed?.keyId ?? null,
      })
      .returning(integrationColumns);
    if (!row) throw new Error('insert returned no row');
    return row;
  } catch (error) {
    translateWriteError(error, name);
  }
}

/** The integration with this id, without its secret; undefined when there is none. */
export async function getIntegration(db: Db, id: string): Promise<Integration | undefined> {
  if (!isUuid(id)) return undefined;
  const [row] = await db.select(integrationColumns).from(integrations).where(eq(integrations.id, id));
  return row;
}

/** Like {@link getIntegration}, but throws {@link NotFoundError} when there is none. */
export async function requireIntegration(db: Db, id: string): Promise<Integration> {
  const row = await getIntegration(db, id);
  if (!row) throw new NotFoundError(`integration ${id} not found`);
  return row;
}

/** Integrations, of one account or all, by account then name. */
export async function listIntegrations(db: Db, filter: { accountId?: string } = {}): Promise<Integration[]> {
  if (filter.accountId !== undefined && !isUuid(filter.accountId)) return [];
  return db
    .select(integrationColumns)
    .from(integrations)
    .where(filter.accountId === undefined ? undefined : eq(integrations.accountId, filter.accountId))
    .orderBy(asc(integrations.accountId), asc(integrations.name));
}

/** Changes configuration fields. Throws {@link NotFoundError} or {@link ConflictError} (name taken). */
export async function updateIntegration(db: Db, id: string, patch: IntegrationPatch): Promise<Integration> {
  if (!isUuid(id)) throw new NotFoundError(`integration ${id} not found`);
  const values = configurationOf(patch);
  if (values.name !== undefined) values.name = requireName(values.name);
  let row: Integration | undefined;
  try {
    [row] = await db
      .update(integrations)
      .set({ ...values, updatedAt: sql`now()` })
      .where(eq(integrations.id, id))
      .returning(integrationColumns);
  } catch (error) {
    translateWriteError(error, values.name);
  }
  if (!row) throw new NotFoundError(`integration ${id} not found`);
  return row;
}

/**
 * Deletes an integration with its runs and synced data. Returns false when there was none. Its
 * live objects and edges leave the account's change feed as deletions, in the same transaction,
 * so a consumer's copy drops them too (edges first, then objects, as a sweep logs them).
 */
export async function removeIntegration(db: Db, id: string): Promise<boolean> {
  if (!isUuid(id)) return false;
  return db.$client.begin(async (tx) => {
    await tx`
      with feed as (
        select 0 as k, 5::smallint as op, null::text as object_type, group_external_id as external_id,
          null::jsonb as added, jsonb_agg(member_external_id) as removed
        from memberships where integration_id = ${id} and deleted_at is null group by group_external_id
        union all
        select 1, 4::smallint, type, external_id, null, null
        from directory_objects where integration_id = ${id} and deleted_at is null
      )${feedWrite(tx, id, null)}
      select 1`;
    const rows = await tx`delete from integrations where id = ${id} returning id`;
    return rows.length > 0;
  });
}

/** Encrypts and stores the integration's secret under the ring's current key; `null` clears it. */
export async function setIntegrationSecret(db: Db, ring: KeyRing, id: string, plaintext: string | null): Promise<void> {
  if (!isUuid(id)) throw new NotFoundError(`integration ${id} not found`);
  const sealed = plaintext === null ? undefined : encryptSecret(ring, plaintext, secretAad(id));
  const rows = await db
    .update(integrations)
    .set({ secretCiphertext: sealed?.ciphertext ?? null, secretKeyId: sealed?.keyId ?? null, updatedAt: sql`now()` })
    .where(eq(integrations.id, id))
    .returning({ id: integrations.id });
  if (rows.length === 0) throw new NotFoundError(`integration ${id} not found`);
}

function openSecret(ring: KeyRing, id: string, sealed: EncryptedSecret): string {
  try {
    return decryptSecret(ring, sealed, secretAad(id));
  } catch (error) {
    if (error instanceof SecretDecryptError) throw new SecretDecryptError(error.reason, `integration ${id}: ${error.message}`);
    throw error;
  }
}

/**
 * Decrypts the integration's secret and hands it to `fn`, the only place the plaintext goes
 * (undefined when no secret is set). Throws {@link NotFoundError}, or {@link SecretDecryptError}
 * when its key is not configured or the ciphertext fails authentication.
 */
export async function withIntegrationSecret<T>(
  db: Db,
  ring: KeyRing,
  id: string,
  fn: (secret: string | undefined) => Promise<T>,
): Promise<T> {
  if (!isUuid(id)) throw new NotFoundError(`integration ${id} not found`);
  const [row] = await db
    .select({ ciphertext: integrations.secretCiphertext, keyId: integrations.secretKeyId })
    .from(integrations)
    .where(eq(integrations.id, id));
  if (!row) throw new NotFoundError(`integration ${id} not found`);
  const secret =
    row.ciphertext === null || row.keyId === null
      ? undefined
      : openSecret(ring, id, { ciphertext: row.ciphertext, keyId: row.keyId });
  return fn(secret);
}

/** Stores the provider cursor for the next delta; `null` makes the next delta run as full. */
export async function setCursor(db: Db, id: string, cursor: Record<string, unknown> | null): Promise<void> {
  if (!isUuid(id)) throw new NotFoundError(`integration ${id} not found`);
  const rows = await db.update(integrations).set({ cursor }).where(eq(integrations.id, id)).returning({ id: integrations.id });
  if (rows.length === 0) throw new NotFoundError(`integration ${id} not found`);
}

/** Records a run's outcome on its integration (status, last run, last success). */
export async function markIntegrationRun(db: Db, id: string, mark: IntegrationRunMark): Promise<void> {
  if (!isUuid(id)) throw new NotFoundError(`integration ${id} not found`);
  const success = mark.success === true ? { lastSuccessRunId: mark.lastRunId, lastSuccessAt: sql`now()` } : {};
  const rows = await db
    .update(integrations)
    .set({ status: mark.status, lastRunId: mark.lastRunId, ...success })
    .where(eq(integrations.id, id))
    .returning({ id: integrations.id });
  if (rows.length === 0) throw new NotFoundError(`integration ${id} not found`);
}

/**
 * Claims a schedule slot for one mode of an enabled integration. A single conditional UPDATE:
 * it succeeds only when the stored slot is empty or older, so among scheduler replicas racing
 * for the same slot exactly one gets `true` (Postgres re-checks the condition on the row after
 * the winner commits). An older slot than the stored one is refused too.
 */
export async function claimScheduleSlot(db: Db, integrationId: string, mode: SyncMode, slot: Date): Promise<boolean> {
  if (!isUuid(integrationId)) return false;
  const column = mode === 'full' ? integrations.fullScheduledFor : integrations.deltaScheduledFor;
  const value = mode === 'full' ? { fullScheduledFor: slot } : { deltaScheduledFor: slot };
  const rows = await db
    .update(integrations)
    .set(value)
    .where(and(eq(integrations.id, integrationId), eq(integrations.enabled, true), or(isNull(column), lt(column, slot))))
    .returning({ id: integrations.id });
  return rows.length === 1;
}

/** Enabled integrations with their schedules and the last slots claimed, for the scheduler tick. */
export async function listSchedulable(db: Db): Promise<SchedulableIntegration[]> {
  return db
    .select({
      id: integrations.id,
      accountId: integrations.accountId,
      kind: integrations.kind,
      deltaCron: integrations.deltaCron,
      fullCron: integrations.fullCron,
      deltaScheduledFor: integrations.deltaScheduledFor,
      fullScheduledFor: integrations.fullScheduledFor,
      createdAt: integrations.createdAt,
    })
    .from(integrations)
    .where(eq(integrations.enabled, true))
    .orderBy(asc(integrations.id));
}
