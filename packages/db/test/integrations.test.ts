import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import {
  claimScheduleSlot,
  close,
  ConflictError,
  connect,
  createAccount,
  createIntegration,
  getIntegration,
  InvalidInputError,
  listIntegrations,
  listSchedulable,
  markIntegrationRun,
  NotFoundError,
  removeIntegration,
  requireIntegration,
  setCursor,
  updateIntegration,
  type Account,
  type Db,
  type NewIntegration,
} from '../src/index.ts';

let database: TestDatabase;
let db: Db;
let acme: Account;
let globex: Account;

const ldapSettings = { url: 'ldaps://ldap.example.test', userBaseDn: 'ou=people,dc=example,dc=test' };

function ldap(accountId: string, name: string, extra: Partial<NewIntegration> = {}): NewIntegration {
  return { accountId, kind: 'ldap', name, settings: ldapSettings, ...extra };
}

beforeAll(async () => {
  database = await createTestDatabase('integrations');
  db = connect(database.url, { max: 5 });
  acme = await createAccount(db, { name: 'acme' });
  globex = await createAccount(db, { name: 'globex' });
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

describe('integration CRUD', () => {
  test('create applies defaults and returns the public shape', async () => {
    const created = await createIntegration(db, ldap(acme.id, 'corp ldap'));
    expect(created).toMatchObject({
      accountId: acme.id,
      kind: 'ldap',
      name: 'corp ldap',
      description: '',
      enabled: true,
      settings: ldapSettings,
      deltaCron: '*/5 * * * *',
      fullCron: '0 2 * * *',
      deleteThresholdCount: 500,
      deleteThresholdPercent: 20,
      cursor: null,
      status: 'new',
      hasSecret: false,
    });
    expect(Object.keys(created)).not.toContain('secretCiphertext');
    expect(Object.keys(created)).not.toContain('secretKeyId');
    expect(await getIntegration(db, created.id)).toEqual(created);
  });

  test('stray fields in the input are not written', async () => {
    const input = { ...ldap(acme.id, 'sneaky'), status: 'succeeded', secretCiphertext: 'x', secretKeyId: 'y' };
    const created = await createIntegration(db, input);
    expect(created.status).toBe('new');
    expect(created.hasSecret).toBe(false);
  });

  test('a name is unique per account, not across accounts', async () => {
    await createIntegration(db, ldap(acme.id, 'shared name'));
    await expect(createIntegration(db, ldap(acme.id, 'shared name'))).rejects.toThrow(
      new ConflictError('an integration named "shared name" already exists in this account'),
    );
    const other = await createIntegration(db, ldap(globex.id, 'shared name'));
    expect(other.accountId).toBe(globex.id);
  });

  test('unknown account, empty name and out-of-range threshold are refused', async () => {
    await expect(createIntegration(db, ldap('7f6c0b9e-1c2d-4e3f-8a9b-0c1d2e3f4a5b', 'orphan'))).rejects.toThrow(NotFoundError);
    await expect(createIntegration(db, ldap(acme.id, ' '))).rejects.toThrow(InvalidInputError);
    await expect(createIntegration(db, ldap(acme.id, 'bad limit', { deleteThresholdPercent: 101 }))).rejects.toThrow(
      InvalidInputError,
    );
  });

  test('list by account, update, remove', async () => {
    const account = await createAccount(db, { name: 'initech' });
    const b = await createIntegration(db, ldap(account.id, 'b'));
    const a = await createIntegration(db, { ...ldap(account.id, 'a'), kind: 'domino', enabled: false });
    expect((await listIntegrations(db, { accountId: account.id })).map((i) => i.name)).toEqual(['a', 'b']);
    expect((await listIntegrations(db)).length).toBeGreaterThan(2);
    expect(await listIntegrations(db, { accountId: 'not-a-uuid' })).toEqual([]);

    const updated = await updateIntegration(db, b.id, {
      description: 'head office',
      deltaCron: '*/10 * * * *',
      deleteThresholdCount: 50,
      settings: { ...ldapSettings, pageSize: 500 },
    });
    expect(updated).toMatchObject({ name: 'b', description: 'head office', deltaCron: '*/10 * * * *', deleteThresholdCount: 50 });
    expect(updated.settings).toEqual({ ...ldapSettings, pageSize: 500 });
    expect(updated.updatedAt.getTime()).toBeGreaterThanOrEqual(b.updatedAt.getTime());
    await expect(updateIntegration(db, b.id, { name: 'a' })).rejects.toThrow(ConflictError);
    await expect(updateIntegration(db, '7f6c0b9e-1c2d-4e3f-8a9b-0c1d2e3f4a5b', { name: 'x' })).rejects.toThrow(NotFoundError);

    expect(await removeIntegration(db, a.id)).toBe(true);
    expect(await removeIntegration(db, a.id)).toBe(false);
    expect(await getIntegration(db, a.id)).toBeUndefined();
    await expect(requireIntegration(db, a.id)).rejects.toThrow(NotFoundError);
    expect(await getIntegration(db, 'not-a-uuid')).toBeUndefined();
  });

  test("an integration's objects and edges go with it, removed directly or with its account; others stay", async () => {
    const edges = (integrationId: string) =>
      db.$client<{ n: number }[]>`select count(*)::int as n from memberships where integration_id = ${integrationId}`.then((rows) => rows[0]?.n);
    const objects = (integrationId: string) =>
      db.$client<{ n: number }[]>`select count(*)::int as n from directory_objects where integration_id = ${integrationId}`.then((rows) => rows[0]?.n);
    const owner = await createAccount(db, { name: 'edges owner' });
    const kept = await createIntegration(db, ldap(acme.id, 'edges kept'));
    const removed = await createIntegration(db, ldap(acme.id, 'edges removed'));
    const withAccount = await createIntegration(db, ldap(owner.id, 'edges of the account'));
    for (const integration of [kept, removed, withAccount]) {
      await db.$client`insert into memberships (integration_id, group_external_id, member_external_id, deleted_at)
        values (${integration.id}, 'g', 'a', null), (${integration.id}, 'g', 'b', now())`;
      await db.$client`insert into directory_objects (integration_id, external_id, type, attributes, content_hash, deleted_at)
        values (${integration.id}, 'g', 'group', '{}', 'h', null), (${integration.id}, 'b', 'user', '{}', 'h', now())`;
    }
    expect(await removeIntegration(db, removed.id)).toBe(true);
    expect([await edges(removed.id), await objects(removed.id)]).toEqual([0, 0]);
    await db.$client`delete from accounts where id = ${owner.id}`;
    expect([await edges(withAccount.id), await objects(withAccount.id)]).toEqual([0, 0]);
    expect([await edges(kept.id), await objects(kept.id)]).toEqual([2, 2]);
  });

  test('cursor and run marks are stored', async () => {
    const integration = await createIntegration(db, ldap(acme.id, 'with cursor'));
    await setCursor(db, integration.id, { highWater: '20250101000000Z', server: 'ldap1' });
    expect((await requireIntegration(db, integration.id)).cursor).toEqual({ highWater: '20250101000000Z', server: 'ldap1' });
    await setCursor(db, integration.id, null);
    expect((await requireIntegration(db, integration.id)).cursor).toBeNull();

    const failedRun = '0b5c2e9a-0000-4000-8000-000000000001';
    await markIntegrationRun(db, integration.id, { status: 'failed', lastRunId: failedRun });
    let stored = await requireIntegration(db, integration.id);
    expect(stored).toMatchObject({ status: 'failed', lastRunId: failedRun, lastSuccessRunId: null, lastSuccessAt: null });

    const goodRun = '0b5c2e9a-0000-4000-8000-000000000002';
    await markIntegrationRun(db, integration.id, { status: 'succeeded', lastRunId: goodRun, success: true });
    stored = await requireIntegration(db, integration.id);
    expect(stored).toMatchObject({ status: 'succeeded', lastRunId: goodRun, lastSuccessRunId: goodRun });
    expect(stored.lastSuccessAt).toBeInstanceOf(Date);

    await expect(setCursor(db, '7f6c0b9e-1c2d-4e3f-8a9b-0c1d2e3f4a5b', null)).rejects.toThrow(NotFoundError);
  });
});

describe('scheduling', () => {
  test('replicas racing for the same slot get exactly one claim', async () => {
    const integration = await createIntegration(db, ldap(acme.id, 'scheduled'));
    const slot = new Date('2030-01-01T10:05:00Z');

    // One pool per replica, as three scheduler processes would have.
    const replicas = [1, 2, 3].map((n) => connect(database.url, { max: 1, applicationName: `scheduler-${n}` }));
    try {
      const results = await Promise.all(replicas.map((replica) => claimScheduleSlot(replica, integration.id, 'delta', slot)));
      expect(results.filter(Boolean)).toHaveLength(1);
    } finally {
      await Promise.all(replicas.map((replica) => close(replica)));
    }

    // Same slot again, an older slot: refused. A later slot: claimed. Modes are independent.
    expect(await claimScheduleSlot(db, integration.id, 'delta', slot)).toBe(false);
    expect(await claimScheduleSlot(db, integration.id, 'delta', new Date('2030-01-01T10:00:00Z'))).toBe(false);
    expect(await claimScheduleSlot(db, integration.id, 'delta', new Date('2030-01-01T10:10:00Z'))).toBe(true);
    expect(await claimScheduleSlot(db, integration.id, 'full', slot)).toBe(true);

    const stored = await requireIntegration(db, integration.id);
    expect(stored.deltaScheduledFor?.toISOString()).toBe('2030-01-01T10:10:00.000Z');
    expect(stored.fullScheduledFor?.toISOString()).toBe('2030-01-01T10:05:00.000Z');
  });

  test('many concurrent rounds never double-claim', async () => {
    const integration = await createIntegration(db, ldap(acme.id, 'busy schedule'));
    for (let minute = 0; minute < 10; minute += 1) {
      const slot = new Date(Date.UTC(2031, 0, 1, 0, minute));
      const results = await Promise.all([1, 2, 3, 4].map(() => claimScheduleSlot(db, integration.id, 'full', slot)));
      expect(results.filter(Boolean)).toHaveLength(1);
    }
  });

  test('disabled integrations are neither listed nor claimed', async () => {
    const account = await createAccount(db, { name: 'scheduling' });
    const on = await createIntegration(db, ldap(account.id, 'on', { fullCron: '0 3 * * *' }));
    const off = await createIntegration(db, ldap(account.id, 'off', { enabled: false }));

    const listed = (await listSchedulable(db)).filter((i) => i.accountId === account.id);
    expect(listed).toEqual([
      {
        id: on.id,
        accountId: account.id,
        kind: 'ldap',
        deltaCron: '*/5 * * * *',
        fullCron: '0 3 * * *',
        deltaScheduledFor: null,
        fullScheduledFor: null,
        createdAt: on.createdAt,
      },
    ]);
    expect(await claimScheduleSlot(db, off.id, 'delta', new Date('2030-01-01T00:00:00Z'))).toBe(false);
  });
});
