import { generateKeyPairSync } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import { is, sql } from 'drizzle-orm';
import { getTableConfig, PgTable } from 'drizzle-orm/pg-core';
import {
  addPendingCredential,
  close,
  connect,
  countSecretsByKey,
  createAccount,
  createConnector,
  createIntegration,
  createKeyRing,
  decryptSecret,
  encryptedColumnName,
  encryptedColumns,
  generateSecretKey,
  openPendingCredential,
  rotateSecretKeys,
  SecretDecryptError,
  storeSecretCandidate,
  withCurrentCredential,
  withIntegrationSecret,
  withSecretCandidate,
  type Db,
  type NewCertificateCredential,
  acceptConsentRedirect,
  createConsentRequest,
  takeConsentSignIn,
  createWebhookEndpoint,
  leaseWebhookEndpoint,
} from '../src/index.ts';

// Key rotation must visit every encrypted column. The registry (encryptedColumns) is checked
// against the drizzle schema and the migrated database by the naming convention, and a rotation
// is proven on a row of every registered column: a new encrypted column that is not registered,
// or registered but not seeded here, fails this file.

const ciphertextName = /(^|_)ciphertext$/;
// Names that suggest a secret stored in the clear; hashes are not secrets.
const secretLooking = /secret|password|passwd|passphrase|private|token|credential_value/;
const notASecret = /(^|_)(hash|key_id)$/;

let database: TestDatabase;
let db: Db;
let accountId: string;

const oldKey = generateSecretKey();
const oldRing = createKeyRing({ current: oldKey });
const newKey = generateSecretKey();
const rotatingRing = createKeyRing({ current: newKey, previous: [oldKey] });
const newOnlyRing = createKeyRing({ current: newKey });

beforeAll(async () => {
  database = await createTestDatabase('encrypted_columns');
  db = connect(database.url, { max: 2 });
  accountId = (await createAccount(db, { name: 'rotation' })).id;
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

const registered = () => encryptedColumns.map(encryptedColumnName).sort();

/** Every table of every schema module (`src/schema*.ts`), so a new schema file is read too. */
async function schemaTables(): Promise<PgTable[]> {
  const dir = fileURLToPath(new URL('../src/', import.meta.url));
  const files = (await readdir(dir)).filter((name) => /^schema.*\.ts$/.test(name) && !name.endsWith('.test.ts'));
  expect(files).toContain('schema.ts');
  // A Set: schema.ts re-exports the tables of the others.
  const tables = new Set<PgTable>();
  for (const file of files) {
    const module = (await import(new URL(`../src/${file}`, import.meta.url).href)) as Record<string, unknown>;
    for (const value of Object.values(module)) if (is(value, PgTable)) tables.add(value);
  }
  return [...tables];
}

async function databaseColumns(): Promise<string[]> {
  const rows = await db.execute(sql`
    select table_name as "table", column_name as "column" from information_schema.columns
    where table_schema not in ('pg_catalog', 'information_schema', 'drizzle')`);
  return (rows as unknown as Array<{ table: string; column: string }>).map((r) => `${r.table}.${r.column}`);
}

test('the registry names exactly the ciphertext columns of the drizzle schema', async () => {
  const tables = await schemaTables();
  expect(tables.length).toBeGreaterThan(5);
  const inSchema = tables.flatMap((table) => {
    const config = getTableConfig(table);
    return config.columns.filter((c) => ciphertextName.test(c.name)).map((c) => `${config.name}.${c.name}`);
  });
  expect(inSchema.sort()).toEqual(registered());
});

test('the registry names exactly the ciphertext columns of the migrated database', async () => {
  const columns = await databaseColumns();
  expect(columns).toContain('integrations.secret_ciphertext');
  expect(columns.filter((c) => ciphertextName.test(c.split('.')[1] ?? '')).sort()).toEqual(registered());
  // No column looks like a secret kept outside the convention (a plain `password`, `private_key`, …).
  const suspicious = columns.filter((c) => {
    const name = c.split('.')[1] ?? '';
    return secretLooking.test(name) && !ciphertextName.test(name) && !notASecret.test(name);
  });
  expect(suspicious).toEqual([]);
});

test('each registered column keeps its key id beside it, by the naming convention', async () => {
  const columns = new Set(await databaseColumns());
  for (const column of encryptedColumns) {
    const table = getTableConfig(column.table).name;
    expect(getTableConfig(column.table).columns).toContain(column.ciphertext);
    expect(column.keyId.name).toBe(column.ciphertext.name.replace(/ciphertext$/, 'key_id'));
    expect(columns.has(`${table}.${column.keyId.name}`)).toBe(true);
    expect(column.binding[0].primary).toBe(true);
  }
});

let serial = 0;
function certificate(): NewCertificateCredential {
  serial += 1;
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const hex = serial.toString(16).padStart(40, '0').toUpperCase();
  return {
    certificatePem: `-----BEGIN CERTIFICATE-----\nTEST${serial}\n-----END CERTIFICATE-----\n`,
    privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    thumbprint: hex,
    thumbprintSha256: hex.padEnd(64, '0'),
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 30 * 24 * 3600_000),
  };
}

async function newConnector(label: string, ring = oldRing) {
  serial += 1;
  const current = certificate();
  const connector = await createConnector(
    db,
    ring,
    {
      name: `rotation ${label}`,
      description: 'key rotation test',
      clientId: `11111111-2222-4333-8444-${String(serial).padStart(12, '0')}`,
      applicationObjectId: `99999999-2222-4333-8444-${String(serial).padStart(12, '0')}`,
      homeTenantId: 'f0f0f0f0-2222-4333-8444-555555555555',
      redirectUri: 'https://dirsync.example/entra/consent',
    },
    current,
  );
  return { connector, current };
}

/** Every stored ciphertext of every registered column, opened with `ring` through the registry. */
async function openEverything(ring: ReturnType<typeof createKeyRing>): Promise<Map<string, number>> {
  const opened = new Map<string, number>();
  for (const column of encryptedColumns) {
    const table = getTableConfig(column.table).name;
    const bindings = sql.join(
      column.binding.map((c, i) => sql`${sql.identifier(c.name)}::text as ${sql.identifier(`b${i}`)}`),
      sql`, `,
    );
    const rows = (await db.execute(sql`
      select ${bindings}, ${sql.identifier(column.ciphertext.name)} as ciphertext, ${sql.identifier(column.keyId.name)} as key_id
      from ${sql.identifier(table)} where ${sql.identifier(column.ciphertext.name)} is not null`)) as unknown as Array<Record<string, string>>;
    for (const row of rows) {
      const aad = column.aad(column.binding.map((_, i) => row[`b${i}`] ?? ''));
      expect(decryptSecret(ring, { ciphertext: row['ciphertext'] ?? '', keyId: row['key_id'] ?? '' }, aad).length).toBeGreaterThan(0);
    }
    opened.set(encryptedColumnName(column), rows.length);
  }
  return opened;
}

test('rotation re-encrypts every encrypted column; afterwards the new key alone opens everything', async () => {
  const integration = await createIntegration(
    db,
    { accountId, kind: 'ldap', name: 'rotation', settings: { url: 'ldaps://ldap.example.test' } },
    { ring: oldRing, plaintext: 'service-password' },
  );
  const candidateId = await storeSecretCandidate(db, oldRing, integration.id, 'candidate-password');
  const { connector, current } = await newConnector('a');
  const pending = certificate();
  await addPendingCredential(db, oldRing, connector.id, pending, null);
  // A consent request whose administrator signed in: its code waits, sealed, for a worker.
  const consent = await createConsentRequest(db, oldRing, { accountId, connectorId: connector.id, tenantId: 'f1f1f1f1-2222-4333-8444-555555555555' });
  const consented = await acceptConsentRedirect(db, oldRing, new URLSearchParams({ admin_consent: 'True', state: consent.state }));
  if (consented.kind !== 'sign_in') throw new Error('expected a sign-in');
  const signIn = await acceptConsentRedirect(db, oldRing, new URLSearchParams({ code: 'authorization-code', state: new URL(consented.url).searchParams.get('state') ?? '' }));
  if (signIn.kind !== 'verify') throw new Error('expected a verification');
  const webhook = await createWebhookEndpoint(db, oldRing, { accountId, url: 'https://hooks.example.test/in', events: ['*'] });

  // The seed covers every registered column: one added to the registry must be seeded above.
  const before = await countSecretsByKey(db);
  for (const name of registered()) {
    expect(before.filter((c) => c.column === name && c.keyId === oldRing.currentKeyId).map((c) => c.count)).toEqual([expect.any(Number)]);
  }
  // Without the old key nothing opens: the situation of issue 8 once the old key is removed.
  await expect(withCurrentCredential(db, newOnlyRing, connector.id, async (c) => c.privateKeyPem)).rejects.toThrow(SecretDecryptError);

  const report = await rotateSecretKeys(db, rotatingRing);
  expect(report.columns.map((c) => c.column).sort()).toEqual(registered());
  for (const column of report.columns) expect(column.reencrypted).toBeGreaterThan(0);
  expect(report.reencrypted).toBe(before.reduce((sum, c) => sum + c.count, 0));
  expect((await countSecretsByKey(db)).every((c) => c.keyId === newOnlyRing.currentKeyId)).toBe(true);
  expect((await rotateSecretKeys(db, rotatingRing)).reencrypted).toBe(0);

  // Every row of every registered column opens with the new key alone…
  const opened = await openEverything(newOnlyRing);
  expect((await takeConsentSignIn(db, newOnlyRing, signIn.request.nonce))?.code).toBe('authorization-code');
  for (const name of registered()) expect(opened.get(name)).toBeGreaterThan(0);
  // …and so does every reader the product uses.
  expect(await withIntegrationSecret(db, newOnlyRing, integration.id, async (s) => s)).toBe('service-password');
  expect(await withSecretCandidate(db, newOnlyRing, integration.id, candidateId, async (s) => s)).toBe('candidate-password');
  expect(await withCurrentCredential(db, newOnlyRing, connector.id, async (c) => c.privateKeyPem)).toBe(current.privateKeyPem);
  expect((await openPendingCredential(db, newOnlyRing, connector.id))?.privateKeyPem).toBe(pending.privateKeyPem);
  expect((await leaseWebhookEndpoint(db, newOnlyRing, webhook.endpoint.id, 'rotation-check', 1_000))?.secret).toBe(webhook.secret);
});

test('a private key whose key is missing stops the whole rotation, which names the column and row and changes nothing', async () => {
  const lostRing = createKeyRing({ current: generateSecretKey() });
  const { connector } = await newConnector('lost', lostRing);
  await createIntegration(
    db,
    { accountId, kind: 'ldap', name: 'rotation second', settings: { url: 'ldaps://ldap.example.test' } },
    { ring: oldRing, plaintext: 'second-password' },
  );
  const before = await countSecretsByKey(db);
  const ring = createKeyRing({ current: generateSecretKey(), previous: [newKey, oldKey] });
  const failure = await rotateSecretKeys(db, ring).then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(failure).toBeInstanceOf(SecretDecryptError);
  const [credential] = (await db.execute(sql`select id::text as id from connector_credentials where connector_id = ${connector.id}`)) as unknown as Array<{ id: string }>;
  expect((failure as Error).message).toContain(`connector_credentials.private_key_ciphertext of ${credential?.id ?? '?'}`);
  expect((failure as Error).message).toContain(lostRing.currentKeyId);
  expect(await countSecretsByKey(db)).toEqual(before);
});
