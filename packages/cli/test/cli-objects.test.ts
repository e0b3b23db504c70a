import { Attribute, Change } from 'ldapts';
import { groupDn, groupMemberIndexes, startSlapd, userDn, type SlapdServer } from '@dirsync/testkit';
import { type CliEnvironment, type CliResult, type CliWorker, createCliEnvironment, ldapIntegrationArgs, parseRunReports } from './support/run-cli.ts';

// What a sync stored, read back with `dirsync objects` as a new user would check it: a slapd
// directory synced by a `dirsync worker` process, then listed and shown through `bin/dirsync`.

const timeoutMs = 60_000;

const users = 12;
const groups = 3;
const membersPerGroup = 5;
// A name a directory may hold but a terminal must not obey: an escape sequence and a
// right-to-left override.
const hostileName = 'Eve \u001b[31mRed\u001b[0m \u202egnp.exe';

let server: SlapdServer;
let cli: CliEnvironment;
let worker: CliWorker | undefined;
let integrationId: string;

interface ListedObject {
  externalId: string;
  type: string;
  dn: string;
  attributes: Record<string, unknown>;
}

function expectOk(result: CliResult): string {
  expect(result).toMatchObject({ code: 0, stderr: '' });
  return result.stdout;
}

async function listJson(...extra: string[]): Promise<{ objects: ListedObject[]; more: boolean }> {
  return JSON.parse(expectOk(await cli.run(['objects', 'list', '--integration', integrationId, '--json', ...extra]))) as { objects: ListedObject[]; more: boolean };
}

async function idOf(dn: string): Promise<string> {
  const { objects } = await listJson('--limit', '1000');
  const found = objects.find((o) => o.dn === dn.toLowerCase());
  if (!found) throw new Error(`${dn} was not synced`);
  return found.externalId;
}

beforeAll(async () => {
  server = await startSlapd({ tls: true, data: { users, groups, membersPerGroup } });
  const admin = await server.client();
  try {
    await admin.modify(userDn(0, server.suffix), new Change({ operation: 'replace', modification: new Attribute({ type: 'displayName', values: [hostileName] }) }));
  } finally {
    await admin.unbind();
  }
  cli = await createCliEnvironment('cliobjs');
  expect((await cli.run(['accounts', 'add', 'acme'])).code).toBe(0);
  const added = await cli.run(
    ldapIntegrationArgs(server, 'Objects'),
    { input: server.readerPassword },
  );
  integrationId = expectOk(added).trim();
  worker = await cli.startWorker('objects-worker');
  const [report] = parseRunReports(expectOk(await cli.run(['sync', integrationId, '--full', '--wait'])));
  expect(report?.fields['status']).toBe('succeeded');
  expect(report?.counts['created']).toBe(users + groups);
}, 3 * timeoutMs);

afterAll(async () => {
  if (worker && worker.child.exitCode === null) await worker.stop();
  await cli?.cleanup();
  await server?.stop();
}, timeoutMs);

test('objects list --type user --json gives every synced user with DN and attributes', async () => {
  const { objects, more } = await listJson('--type', 'user');
  expect(more).toBe(false);
  expect(objects.map((o) => o.dn).sort()).toEqual(Array.from({ length: users }, (_, i) => userDn(i, server.suffix).toLowerCase()).sort());
  expect(new Set(objects.map((o) => o.type))).toEqual(new Set(['user']));
  for (const o of objects) expect(o.externalId).toMatch(/^[0-9a-f-]{36}$/);
  const eve = objects.find((o) => o.dn === userDn(0, server.suffix).toLowerCase());
  expect(eve?.attributes).toMatchObject({ uid: 'user0000000', displayName: hostileName });
}, timeoutMs);

test('--json keeps directory text exact but escapes what a terminal would obey', async () => {
  const out = expectOk(await cli.run(['objects', 'list', '--integration', integrationId, '--type', 'user', '--json']));
  expect(out).not.toMatch(/[\u001b\u202e]/);
  expect(out).toContain('Eve \\u001b[31mRed\\u001b[0m \\u202egnp.exe');
}, timeoutMs);

test('objects list prints a table, says when --limit cut it short, and cleans directory text', async () => {
  const out = expectOk(await cli.run(['objects', 'list', '--integration', integrationId, '--limit', '5']));
  const [header, dashes, ...rest] = out.trim().split('\n');
  expect(header).toMatch(/^external id\s+type\s+name\s+dn\s+updated$/);
  expect(dashes).toMatch(/^-+(\s+-+)+$/);
  expect(rest).toHaveLength(6);
  expect(rest.at(-1)).toBe('(more than 5: raise --limit to see more)');

  const all = expectOk(await cli.run(['objects', 'list', '--integration', integrationId, '--type', 'group']));
  const rows = all.trim().split('\n').slice(2);
  expect(rows).toHaveLength(groups);
  for (const row of rows) expect(row).toMatch(/^[0-9a-f-]{36}\s+group\s+group\d{5}\s+cn=group\d{5},ou=groups,/);

  const people = expectOk(await cli.run(['objects', 'list', '--integration', integrationId, '--type', 'user']));
  expect(people).not.toMatch(/[\u001b\u202e]/);
  expect(people).toContain('Eve [31mRed [0m gnp.exe');
}, timeoutMs);

test('objects show --json of a group gives its members; of a user, the groups it belongs to', async () => {
  const group = 1;
  const groupId = await idOf(groupDn(group, server.suffix));
  const shown = JSON.parse(expectOk(await cli.run(['objects', 'show', groupId, '--integration', integrationId, '--json']))) as {
    externalId: string; type: string; dn: string; deleted: boolean; members: { dn: string; type: string }[]; memberOf: unknown[]; unresolvedMembers: string[];
  };
  expect(shown).toMatchObject({ externalId: groupId, type: 'group', dn: groupDn(group, server.suffix).toLowerCase(), deleted: false, memberOf: [], unresolvedMembers: [] });
  const expected = groupMemberIndexes(group, users, membersPerGroup).map((i) => userDn(i, server.suffix).toLowerCase()).sort();
  expect(shown.members.map((m) => m.dn)).toEqual(expected);
  expect(new Set(shown.members.map((m) => m.type))).toEqual(new Set(['user']));

  const member = groupMemberIndexes(group, users, membersPerGroup)[0]!;
  const userId = await idOf(userDn(member, server.suffix));
  const user = JSON.parse(expectOk(await cli.run(['objects', 'show', userId, '--integration', integrationId, '--json']))) as { memberOf: { dn: string }[]; members: unknown[] };
  const groupsOfUser = Array.from({ length: groups }, (_, j) => j)
    .filter((j) => groupMemberIndexes(j, users, membersPerGroup).includes(member))
    .map((j) => groupDn(j, server.suffix).toLowerCase());
  expect(user.memberOf.map((g) => g.dn)).toEqual(groupsOfUser);
  expect(user.members).toEqual([]);
}, timeoutMs);

test('objects show prints attributes, DN and memberships as text', async () => {
  const userId = await idOf(userDn(0, server.suffix));
  const out = expectOk(await cli.run(['objects', 'show', userId, '--integration', integrationId]));
  expect(out).toMatch(new RegExp(`^external id:\\s+${userId}$`, 'm'));
  expect(out).toMatch(new RegExp(`^dn:\\s+${userDn(0, server.suffix)}$`, 'm'));
  expect(out).toMatch(/^status:\s+live$/m);
  expect(out).toMatch(/^uid:\s+user0000000$/m);
  expect(out).toMatch(/^displayName:\s+Eve \[31mRed \[0m gnp\.exe$/m);
  expect(out).not.toMatch(/[\u001b\u202e]/);
  const belongs = Array.from({ length: groups }, (_, j) => j).filter((j) => groupMemberIndexes(j, users, membersPerGroup).includes(0));
  expect(out).toContain(`member of (${belongs.length}):`);
  for (const j of belongs) expect(out).toContain(groupDn(j, server.suffix));
  expect(out).not.toContain('members (');
}, timeoutMs);

test('unknown objects, types and integrations are refused with one line (exit codes: 3 not found, 2 usage)', async () => {
  const missing = await cli.run(['objects', 'show', 'no-such-id', '--integration', integrationId]);
  expect(missing).toMatchObject({ code: 3, stdout: '', stderr: `dirsync: no synced object no-such-id in integration ${integrationId}\n` });
  const badType = await cli.run(['objects', 'list', '--integration', integrationId, '--type', 'printer']);
  expect(badType).toMatchObject({ code: 2, stdout: '', stderr: 'dirsync: unknown type "printer": use one of user, group, contact\n' });
  const noIntegration = await cli.run(['objects', 'list', '--integration', '00000000-0000-4000-8000-000000000000']);
  expect(noIntegration).toMatchObject({ code: 3, stdout: '', stderr: 'dirsync: integration 00000000-0000-4000-8000-000000000000 not found\n' });
}, timeoutMs);
