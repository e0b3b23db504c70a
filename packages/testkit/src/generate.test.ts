import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generatedGroup, generatedUser, groupDn, groupMemberIndexes, userDn, writeDirectoryLdif } from './generate.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'dirsync-generate-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('generated directory', () => {
  it('is identical for the same seed and differs for another seed', async () => {
    const spec = { users: 300, groups: 12, membersPerGroup: 25, readerPassword: 'pw' };
    const a = await writeDirectoryLdif(join(dir, 'a.ldif'), { ...spec, seed: 7 });
    const b = await writeDirectoryLdif(join(dir, 'b.ldif'), { ...spec, seed: 7 });
    const c = await writeDirectoryLdif(join(dir, 'c.ldif'), { ...spec, seed: 8 });
    // The reader's password hash is salted at random, so compare everything after the base entries.
    const body = async (path: string) => (await readFile(path, 'utf8')).split(`dn: ${userDn(0)}`)[1];
    expect(await body(a.path)).toBe(await body(b.path));
    expect(await body(a.path)).not.toBe(await body(c.path));
    expect(a).toMatchObject({ users: 300, groups: 12, memberships: 300, entries: 316 });
  });

  it('writes each user and group as generatedUser/generatedGroup describe them', async () => {
    const spec = { users: 50, groups: 3, membersPerGroup: 5, seed: 3 };
    const out = await writeDirectoryLdif(join(dir, 'd.ldif'), { ...spec, readerPassword: 'pw' });
    const text = await readFile(out.path, 'utf8');
    const user = generatedUser(10, 3);
    expect(text).toContain(`dn: ${userDn(10)}\n`);
    expect(text).toContain(`employeeNumber: ${String(user['employeeNumber'])}\n`);
    expect(user['mail']).toHaveLength(2);
    for (const member of generatedGroup(2, spec)['member'] as string[]) expect(text).toContain(`member: ${member}\n`);
    expect(text).toContain(`dn: ${groupDn(2)}\n`);
  });
});

describe('groupMemberIndexes', () => {
  it.each([
    [1000, 100],
    [997, 500],
    [64, 64],
    [10, 25],
  ])('picks distinct users among %i for %i members', (users, k) => {
    const members = groupMemberIndexes(4, users, k, 1);
    expect(members).toHaveLength(Math.min(users, k));
    expect(new Set(members).size).toBe(members.length);
    for (const m of members) expect(m).toBeGreaterThanOrEqual(0);
    for (const m of members) expect(m).toBeLessThan(users);
  });

  it('uses the empty DN as the placeholder of a group without members', () => {
    expect(generatedGroup(0, { users: 10, groups: 1, membersPerGroup: 0 })['member']).toEqual(['']);
  });
});
