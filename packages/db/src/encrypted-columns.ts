import { sql } from 'drizzle-orm';
import { getTableConfig, type PgColumn, type PgTable } from 'drizzle-orm/pg-core';
import type { Db } from './client.ts';
import { SecretDecryptError } from './errors.ts';
import { integrations } from './schema.ts';
import { integrationSecretCandidates } from './schema-api.ts';
import { connectorCredentials, entraConsentStates } from './schema-entra.ts';
import { webhookEndpoints } from './schema-webhooks.ts';
import { decryptSecret, encryptSecret, type KeyRing } from './secrets.ts';

// Every column holding a secret sealed with encryptSecret is listed here, with what its
// associated data is made of, so that key rotation (and anything else that must visit every
// secret) cannot miss one. Naming convention, checked against the schema and the live database
// by packages/db/test/encrypted-columns.test.ts: the ciphertext column is `ciphertext` or
// `<name>_ciphertext`, and the id of its key sits beside it as `key_id` or `<name>_key_id`.

/** Associated data of an integration's secret: the ciphertext cannot be moved to another integration. */
export function integrationSecretAad(integrationId: string): string {
  return `integration:${integrationId}`;
}

/** Associated data of a password candidate: bound to its integration and to itself. */
export function secretCandidateAad(integrationId: string, candidateId: string): string {
  return `secret-candidate:${integrationId}:${candidateId}`;
}

/** Associated data of a connector certificate's private key: bound to its credential row. */
export function connectorPrivateKeyAad(credentialId: string): string {
  return `connector-credential:${credentialId}`;
}

/** Associated data of a consent sign-in's authorization code: bound to its consent request. */
export function consentCodeAad(nonce: string): string {
  return `entra-consent-code:${nonce}`;
}

/** Associated data of a webhook endpoint's signing secret: bound to its endpoint. */
export function webhookSecretAad(endpointId: string): string {
  return `webhook-endpoint:${endpointId}`;
}

/** One encrypted column: where it is, where its key id is, and how its associated data is built. */
export interface EncryptedColumn {
  readonly table: PgTable;
  readonly ciphertext: PgColumn;
  readonly keyId: PgColumn;
  /** Columns the associated data is made of; the first is the row's primary key. */
  readonly binding: readonly [PgColumn, ...PgColumn[]];
  /** Builds the associated data from the binding columns' values, in order. */
  aad(values: readonly string[]): string;
}

/** Every encrypted column of the schema. A new one must be added here (a test enforces it). */
export const encryptedColumns: readonly EncryptedColumn[] = [
  {
    table: integrations,
    ciphertext: integrations.secretCiphertext,
    keyId: integrations.secretKeyId,
    binding: [integrations.id],
    aad: ([id]) => integrationSecretAad(id ?? ''),
  },
  {
    table: integrationSecretCandidates,
    ciphertext: integrationSecretCandidates.ciphertext,
    keyId: integrationSecretCandidates.keyId,
    binding: [integrationSecretCandidates.id, integrationSecretCandidates.integrationId],
    aad: ([id, integrationId]) => secretCandidateAad(integrationId ?? '', id ?? ''),
  },
  {
    table: connectorCredentials,
    ciphertext: connectorCredentials.privateKeyCiphertext,
    keyId: connectorCredentials.privateKeyKeyId,
    binding: [connectorCredentials.id],
    aad: ([id]) => connectorPrivateKeyAad(id ?? ''),
  },
  {
    table: entraConsentStates,
    ciphertext: entraConsentStates.codeCiphertext,
    keyId: entraConsentStates.codeKeyId,
    binding: [entraConsentStates.nonce],
    aad: ([nonce]) => consentCodeAad(nonce ?? ''),
  },
  {
    table: webhookEndpoints,
    ciphertext: webhookEndpoints.secretCiphertext,
    keyId: webhookEndpoints.secretKeyId,
    binding: [webhookEndpoints.id],
    aad: ([id]) => webhookSecretAad(id ?? ''),
  },
];

/** `table.column` of an encrypted column's ciphertext, as the database names them. */
export function encryptedColumnName(column: EncryptedColumn): string {
  return `${getTableConfig(column.table).name}.${column.ciphertext.name}`;
}

/** Re-encryption count of one encrypted column. */
export interface ColumnRotation {
  /** `table.column` of the ciphertext. */
  readonly column: string;
  readonly reencrypted: number;
}

/** What {@link rotateSecretKeys} did. */
export interface SecretRotationReport {
  /** Secrets re-encrypted in all columns. */
  readonly reencrypted: number;
  /** Per encrypted column, every one listed (zero included). */
  readonly columns: readonly ColumnRotation[];
}

interface SealedRow {
  ciphertext: string;
  key_id: string | null;
  [binding: `b${number}`]: string;
}

function bindingValues(column: EncryptedColumn, row: SealedRow): string[] {
  return column.binding.map((_, index) => row[`b${index}`] ?? '');
}

async function rotateColumn(tx: Db, ring: KeyRing, column: EncryptedColumn): Promise<number> {
  const name = encryptedColumnName(column);
  const table = sql.identifier(getTableConfig(column.table).name);
  const ciphertext = sql.identifier(column.ciphertext.name);
  const keyId = sql.identifier(column.keyId.name);
  const bindings = sql.join(
    column.binding.map((c, index) => sql`${sql.identifier(c.name)}::text as ${sql.identifier(`b${index}`)}`),
    sql`, `,
  );
  const stale = (await tx.execute(sql`
    select ${bindings}, ${ciphertext} as ciphertext, ${keyId} as key_id
    from ${table}
    where ${ciphertext} is not null and (${keyId} is null or ${keyId} <> ${ring.currentKeyId})
    order by 1
    for update`)) as unknown as SealedRow[];
  for (const row of stale) {
    const values = bindingValues(column, row);
    const aad = column.aad(values);
    let plaintext: string;
    try {
      plaintext = decryptSecret(ring, { ciphertext: row.ciphertext, keyId: row.key_id ?? '' }, aad);
    } catch (error) {
      // Names the column and the row, never the ciphertext: which key is missing is the useful part.
      if (error instanceof SecretDecryptError) throw new SecretDecryptError(error.reason, `${name} of ${values[0] ?? ''}: ${error.message}`);
      throw error;
    }
    const sealed = encryptSecret(ring, plaintext, aad);
    await tx.execute(sql`
      update ${table} set ${ciphertext} = ${sealed.ciphertext}, ${keyId} = ${sealed.keyId}
      where ${column.binding[0]} = ${values[0] ?? ''}`);
  }
  return stale.length;
}

/**
 * Re-encrypts under the ring's current key every secret of every encrypted column
 * ({@link encryptedColumns}) made with another key, in one transaction: if any cannot be
 * decrypted (its key is missing from the ring, or it was altered) nothing changes and the error
 * names the column and the row. Afterwards the previous keys can be removed from the configuration.
 */
export async function rotateSecretKeys(db: Db, ring: KeyRing): Promise<SecretRotationReport> {
  return db.transaction(async (tx) => {
    const columns: ColumnRotation[] = [];
    for (const column of encryptedColumns) {
      columns.push({ column: encryptedColumnName(column), reencrypted: await rotateColumn(tx as unknown as Db, ring, column) });
    }
    return { reencrypted: columns.reduce((sum, c) => sum + c.reencrypted, 0), columns };
  });
}

/** How many stored secrets of each encrypted column each key protects. */
export async function countSecretsByKey(db: Db): Promise<Array<{ column: string; keyId: string | null; count: number }>> {
  const counts: Array<{ column: string; keyId: string | null; count: number }> = [];
  for (const column of encryptedColumns) {
    const rows = (await db.execute(sql`
      select ${sql.identifier(column.keyId.name)} as key_id, count(*)::int as n
      from ${sql.identifier(getTableConfig(column.table).name)}
      where ${sql.identifier(column.ciphertext.name)} is not null
      group by 1 order by 1`)) as unknown as Array<{ key_id: string | null; n: number }>;
    for (const row of rows) counts.push({ column: encryptedColumnName(column), keyId: row.key_id, count: row.n });
  }
  return counts;
}
