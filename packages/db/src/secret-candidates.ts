import { randomUUID } from 'node:crypto';
import { and, eq, lt, sql } from 'drizzle-orm';
import type { Db } from './client.ts';
import { NotFoundError, pgCodes, pgErrorOf, SecretDecryptError } from './errors.ts';
import { secretCandidateAad } from './encrypted-columns.ts';
import { isUuid } from './ids.ts';
import { integrationSecretCandidates } from './schema-api.ts';
import { decryptSecret, encryptSecret, type KeyRing } from './secrets.ts';

/** How long a candidate secret may wait for its check before it is ignored and purged. */
export const secretCandidateTtlMs = 10 * 60_000;

// Bound to the integration and the candidate: a ciphertext copied to another row cannot be opened.
const candidateAad = secretCandidateAad;

/**
 * Stores a secret that a worker should check (Test Connection with it) before it replaces the
 * integration's secret, encrypted like the secret itself. Returns the candidate id, which is all
 * a job payload carries. Expired candidates are purged on the way. Throws {@link NotFoundError}.
 */
export async function storeSecretCandidate(db: Db, ring: KeyRing, integrationId: string, plaintext: string): Promise<string> {
  if (!isUuid(integrationId)) throw new NotFoundError(`integration ${integrationId} not found`);
  await db.delete(integrationSecretCandidates).where(lt(integrationSecretCandidates.expiresAt, sql`now()`));
  const id = randomUUID();
  const sealed = encryptSecret(ring, plaintext, candidateAad(integrationId, id));
  try {
    await db.insert(integrationSecretCandidates).values({
      id,
      integrationId,
      ciphertext: sealed.ciphertext,
      keyId: sealed.keyId,
      expiresAt: sql`now() + make_interval(secs => ${secretCandidateTtlMs / 1000})`,
    });
  } catch (error) {
    if (pgErrorOf(error)?.code === pgCodes.foreignKeyViolation) throw new NotFoundError(`integration ${integrationId} not found`);
    throw error;
  }
  return id;
}

/**
 * Decrypts a candidate of `integrationId` and hands it to `fn`, the only place the plaintext
 * goes. Throws {@link NotFoundError} when it does not exist, belongs to another integration or
 * expired, {@link SecretDecryptError} when it cannot be decrypted.
 */
export async function withSecretCandidate<T>(
  db: Db,
  ring: KeyRing,
  integrationId: string,
  candidateId: string,
  fn: (secret: string) => Promise<T>,
): Promise<T> {
  const missing = () => new NotFoundError(`secret candidate ${candidateId} of integration ${integrationId} not found or expired`);
  if (!isUuid(integrationId) || !isUuid(candidateId)) throw missing();
  const [row] = await db
    .select({ ciphertext: integrationSecretCandidates.ciphertext, keyId: integrationSecretCandidates.keyId })
    .from(integrationSecretCandidates)
    .where(
      and(
        eq(integrationSecretCandidates.id, candidateId),
        eq(integrationSecretCandidates.integrationId, integrationId),
        sql`${integrationSecretCandidates.expiresAt} > now()`,
      ),
    );
  if (!row) throw missing();
  let secret: string;
  try {
    secret = decryptSecret(ring, row, candidateAad(integrationId, candidateId));
  } catch (error) {
    if (error instanceof SecretDecryptError) throw new SecretDecryptError(error.reason, `secret candidate ${candidateId}: ${error.message}`);
    throw error;
  }
  return fn(secret);
}

/** Deletes a candidate once its check is over (whatever the outcome). */
export async function deleteSecretCandidate(db: Db, candidateId: string): Promise<void> {
  if (!isUuid(candidateId)) return;
  await db.delete(integrationSecretCandidates).where(eq(integrationSecretCandidates.id, candidateId));
}
