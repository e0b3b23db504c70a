import { createTestDatabase, type TestDatabase } from '@dirsync/testkit';
import {
  claimDueBatch,
  close,
  connect,
  coverScheduleSlots,
  createAccount,
  createIntegration,
  getIntegrationSchedule,
  releaseClaimedSlots,
  type Db,
  type NewIntegration,
} from '../src/index.ts';

let database: TestDatabase;
let db: Db;
let accountId: string;
let count = 0;

const t = (iso: string) => new Date(iso);
const defaults = { deltaCron: '*/5 * * * *', fullCron: '0 2 * * *' };

beforeAll(async () => {
  database = await createTestDatabase('schedule-slots');
  db = connect(database.url, { max: 4 });
  accountId = (await createAccount(db, { name: 'acme' })).id;
});

afterAll(async () => {
  await close(db);
  await database.drop();
});

async function newIntegration(extra: Partial<NewIntegration> = {}) {
  count += 1;
  const integration = await createIntegration(db, {
    accountId,
    kind: 'ldap',
    name: `slots-${count}`,
    settings: { url: 'ldaps://ldap.example.test', userBaseDn: 'ou=people,dc=example,dc=test' },
    ...extra,
  });
  return integration.id;
}

async function stored(id: string) {
  const [row] = await db.$client<Array<{ full: string | null; delta: string | null; next_due_at: string }>>`
    select full_scheduled_for as full, delta_scheduled_for as delta,
      case when next_due_at = '-infinity' then '-infinity'
        else to_char(next_due_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') end as next_due_at
    from integrations where id = ${id}`;
  return {
    full: row?.full == null ? null : new Date(row.full).toISOString(),
    delta: row?.delta == null ? null : new Date(row.delta).toISOString(),
    nextDueAt: row?.next_due_at,
  };
}

// Sets the row's next due time as a scheduler tick would (its own claim statement).
async function retime(id: string, nextDue: Date) {
  const batch = await claimDueBatch(db, {
    now: t('2024-05-01T00:00:00Z'),
    limit: 1000,
    decide: (candidate) => ({ due: { full: null, delta: null }, nextDueAt: candidate.id === id ? nextDue : t('2024-05-01T00:00:01Z') }),
  });
  expect(batch.claims.map((claim) => claim.candidate.id)).toContain(id);
}

test('the crons of an integration are read as stored; an unknown id has none', async () => {
  const id = await newIntegration({ deltaCron: '0 * * * *' });
  expect(await getIntegrationSchedule(db, id)).toEqual({ deltaCron: '0 * * * *', fullCron: '0 2 * * *' });
  expect(await getIntegrationSchedule(db, '00000000-0000-4000-8000-000000000000')).toBeUndefined();
});

test('covering stores newer slots and makes the row due for a fresh look', async () => {
  const id = await newIntegration();
  await retime(id, t('2024-05-01T10:05:00Z'));
  expect((await stored(id)).nextDueAt).toBe('2024-05-01T10:05:00Z');

  expect(await coverScheduleSlots(db, id, defaults, { full: t('2024-05-01T02:00:00Z'), delta: t('2024-05-01T10:00:00Z') })).toEqual({
    full: t('2024-05-01T02:00:00Z'),
    delta: t('2024-05-01T10:00:00Z'),
    previousFull: null,
    previousDelta: null,
  });
  expect(await stored(id)).toEqual({ full: '2024-05-01T02:00:00.000Z', delta: '2024-05-01T10:00:00.000Z', nextDueAt: '-infinity' });
});

test('a slot is only moved forward; a covered mode of null leaves its slot alone', async () => {
  const id = await newIntegration();
  expect(await coverScheduleSlots(db, id, defaults, { full: t('2024-05-01T02:00:00Z'), delta: t('2024-05-01T10:00:00Z') })).not.toBeNull();
  await retime(id, t('2024-05-01T10:05:00Z'));

  // Older or equal slots: nothing moves, and the row keeps its due time.
  expect(await coverScheduleSlots(db, id, defaults, { full: t('2024-04-30T02:00:00Z'), delta: t('2024-05-01T10:00:00Z') })).toBeNull();
  expect(await stored(id)).toEqual({ full: '2024-05-01T02:00:00.000Z', delta: '2024-05-01T10:00:00.000Z', nextDueAt: '2024-05-01T10:05:00Z' });

  // A newer delta alone moves the delta; the full stays, even when the full given is older.
  // Only the delta moved: what is handed back on a release is the delta alone.
  expect(await coverScheduleSlots(db, id, defaults, { full: t('2024-04-30T02:00:00Z'), delta: t('2024-05-01T10:05:00Z') })).toEqual({
    full: null,
    delta: t('2024-05-01T10:05:00Z'),
    previousFull: t('2024-05-01T02:00:00Z'),
    previousDelta: t('2024-05-01T10:00:00Z'),
  });
  expect(await stored(id)).toMatchObject({ full: '2024-05-01T02:00:00.000Z', delta: '2024-05-01T10:05:00.000Z' });
  expect(await coverScheduleSlots(db, id, defaults, { full: null, delta: t('2024-05-01T10:10:00Z') })).not.toBeNull();
  expect(await stored(id)).toMatchObject({ full: '2024-05-01T02:00:00.000Z', delta: '2024-05-01T10:10:00.000Z' });
  expect(await coverScheduleSlots(db, id, defaults, { full: null, delta: null })).toBeNull();
});

test('slots worked out from crons the row no longer has cover nothing', async () => {
  const id = await newIntegration();
  await db.$client`update integrations set delta_cron = '0 * * * *' where id = ${id}`;
  expect(await coverScheduleSlots(db, id, defaults, { full: t('2024-05-01T02:00:00Z'), delta: t('2024-05-01T10:05:00Z') })).toBeNull();
  expect(await stored(id)).toMatchObject({ full: null, delta: null });
  expect(await coverScheduleSlots(db, '00000000-0000-4000-8000-000000000000', defaults, { full: t('2024-05-01T02:00:00Z'), delta: null })).toBeNull();
});

test('concurrent covers keep the latest slot whatever their order', async () => {
  const id = await newIntegration();
  const slots = Array.from({ length: 12 }, (_, i) => t(`2024-05-01T10:${String(i * 5).padStart(2, '0')}:00Z`));
  const handles = [connect(database.url, { max: 2 }), connect(database.url, { max: 2 }), connect(database.url, { max: 2 })];
  try {
    // Newest first, so most statements find a later slot already stored.
    await Promise.all(
      slots.toReversed().map((slot, i) => coverScheduleSlots(handles[i % handles.length]!, id, defaults, { full: null, delta: slot })),
    );
  } finally {
    await Promise.all(handles.map((handle) => close(handle)));
  }
  expect(await stored(id)).toMatchObject({ full: null, delta: '2024-05-01T10:55:00.000Z' });
});

test('a cover handed back restores the slots it moved, unless a later slot was stored since', async () => {
  const id = await newIntegration();
  const first = await coverScheduleSlots(db, id, defaults, { full: t('2024-05-01T02:00:00Z'), delta: t('2024-05-01T10:00:00Z') });
  expect(first).not.toBeNull();
  await releaseClaimedSlots(db, id, first!);
  expect(await stored(id)).toEqual({ full: null, delta: null, nextDueAt: '-infinity' });

  // A cover, then a later delta slot stored by someone else: the release puts back the full only.
  const second = await coverScheduleSlots(db, id, defaults, { full: t('2024-05-01T02:00:00Z'), delta: t('2024-05-01T10:00:00Z') });
  await coverScheduleSlots(db, id, defaults, { full: null, delta: t('2024-05-01T10:05:00Z') });
  await releaseClaimedSlots(db, id, second!);
  expect(await stored(id)).toMatchObject({ full: null, delta: '2024-05-01T10:05:00.000Z' });
});
