import { close, connect, createKeyRing, encryptedColumnName, encryptedColumns, generateSecretKey, listConnectors, listIntegrations, withCurrentCredential, withIntegrationSecret, type Db } from '@dirsync/db';
import { type CliEnvironment, type CliResult, createCliEnvironment } from './support/run-cli.ts';

// `dirsync secrets rotate-key` as an operator runs it: new key current, old key previous, then the
// old key removed. Every secret the product stores must still open (issue 8: the connectors'
// private keys were left under the old key).

const timeoutMs = 60_000;

let cli: CliEnvironment;
let db: Db;

beforeAll(async () => {
  cli = await createCliEnvironment('clisecrets');
  db = connect(cli.database.url, { max: 1 });
}, timeoutMs);

afterAll(async () => {
  await close(db);
  await cli?.cleanup();
}, timeoutMs);

function ok(result: CliResult): string {
  expect(result).toMatchObject({ code: 0, stderr: '' });
  return result.stdout;
}

test('rotate-key re-encrypts integration secrets and connector private keys; the old key can then go', async () => {
  const oldKey = cli.env['DIRSYNC_SECRET_KEY'] ?? '';
  ok(await cli.run(['accounts', 'add', 'acme']));
  ok(
    await cli.run(
      [
        'integrations', 'add', '--account', 'acme', '--kind', 'ldap', '--name', 'hq', '--url', 'ldaps://ldap.example.com',
        '--bind-dn', 'cn=reader,dc=example,dc=com', '--users-base', 'ou=people,dc=example,dc=com', '--groups-base', 'ou=groups,dc=example,dc=com',
      ],
      { env: { DIRSYNC_INTEGRATION_SECRET: 'hq-reader-password' } },
    ),
  );
  ok(
    await cli.run([
      'connectors', 'add', '--name', 'dirsync', '--description', 'Directory sync for customers',
      '--client-id', '11111111-2222-4333-8444-000000000001', '--object-id', '99999999-2222-4333-8444-000000000001',
      '--home-tenant', 'f0f0f0f0-2222-4333-8444-555555555555', '--redirect-uri', 'https://dirsync.example/entra/consent',
    ]),
  );
  const [integration] = await listIntegrations(db);
  const [connector] = await listConnectors(db);
  const oldPem = await withCurrentCredential(db, createKeyRing({ current: oldKey }), connector?.id ?? '', async (c) => c.privateKeyPem);
  expect(oldPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);

  const newKey = generateSecretKey();
  const rotated = ok(await cli.run(['secrets', 'rotate-key'], { env: { DIRSYNC_SECRET_KEY: newKey, DIRSYNC_SECRET_KEYS_PREVIOUS: oldKey } }));
  const newOnly = createKeyRing({ current: newKey });
  expect(rotated).toContain(`re-encrypted 2 secret(s) under key ${newOnly.currentKeyId}`);
  // One line per encrypted column, so an operator sees what was covered.
  for (const column of encryptedColumns) expect(rotated).toMatch(new RegExp(`^${encryptedColumnName(column)}\\s+\\d+$`, 'm'));
  expect(rotated).toMatch(/^connector_credentials\.private_key_ciphertext\s+1$/m);
  expect(rotated).toMatch(/^integrations\.secret_ciphertext\s+1$/m);
  expect(rotated).toMatch(/the previous keys can be removed/);
  expect(rotated).not.toContain(oldKey);
  expect(rotated).not.toContain(newKey);

  // The old key removed: the Entra connector's key and the LDAP password both still open.
  expect(await withCurrentCredential(db, newOnly, connector?.id ?? '', async (c) => c.privateKeyPem)).toBe(oldPem);
  expect(await withIntegrationSecret(db, newOnly, integration?.id ?? '', async (s) => s)).toBe('hq-reader-password');
  const again = ok(await cli.run(['secrets', 'rotate-key'], { env: { DIRSYNC_SECRET_KEY: newKey } }));
  expect(again).toContain('re-encrypted 0 secret(s)');
}, timeoutMs);

test('rotate-key without the key a secret was made with changes nothing and says which key is missing', async () => {
  const lost = createKeyRing({ current: cli.env['DIRSYNC_SECRET_KEY'] ?? '' });
  const refused = await cli.run(['secrets', 'rotate-key'], { env: { DIRSYNC_SECRET_KEY: generateSecretKey() } });
  expect(refused.code).not.toBe(0);
  expect(refused.stdout).toBe('');
  // The first test's secrets are under its new key, which this run does not have.
  expect(refused.stderr).toMatch(/^dirsync: .*(integrations\.secret_ciphertext|connector_credentials\.private_key_ciphertext) of [0-9a-f-]{36}: secret was encrypted with key [0-9a-f]{16}/);
  expect(refused.stderr).not.toContain(lost.currentKeyId);
}, timeoutMs);
