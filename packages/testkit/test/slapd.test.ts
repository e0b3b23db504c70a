import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'ldapts';
import { type SlapdServer, createTestCertificates, groupDn, startSlapd, userDn } from '../src/index.ts';

async function count(client: Client, base: string, filter: string): Promise<{ entries: number; members: number }> {
  let entries = 0;
  let members = 0;
  for await (const page of client.searchPaginated(base, { filter, attributes: ['member'], paged: { pageSize: 500 } })) {
    entries += page.searchEntries.length;
    for (const e of page.searchEntries) {
      const m = e['member'];
      members += Array.isArray(m) ? m.length : m ? 1 : 0;
    }
  }
  return { entries, members };
}

describe('startSlapd with generated data', () => {
  let server: SlapdServer;
  beforeAll(async () => {
    server = await startSlapd({ data: { users: 1200, groups: 30, membersPerGroup: 40, seed: 5 } });
  });
  afterAll(async () => {
    await server.stop();
  });

  it('loads every generated user, group and member with slapadd', async () => {
    const client = await server.client();
    try {
      const people = await count(client, `ou=people,${server.suffix}`, '(objectClass=inetOrgPerson)');
      const groups = await count(client, `ou=groups,${server.suffix}`, '(objectClass=groupOfNames)');
      expect(people.entries).toBe(1200);
      expect(groups).toEqual({ entries: 30, members: 30 * 40 });
    } finally {
      await client.unbind();
    }
  });

  it('fills entryUUID and modifyTimestamp on loaded entries', async () => {
    const client = await server.client();
    try {
      const { searchEntries } = await client.search(userDn(7), { scope: 'base', attributes: ['entryUUID', 'modifyTimestamp'] });
      expect(searchEntries[0]?.['entryUUID']).toMatch(/^[0-9a-f-]{36}$/);
      expect(searchEntries[0]?.['modifyTimestamp']).toMatch(/^\d{14}Z$/);
    } finally {
      await client.unbind();
    }
  });

  it('lets the reader account read entries but not passwords, and anonymous read nothing', async () => {
    const reader = new Client({ url: server.url });
    const anonymous = new Client({ url: server.url });
    try {
      await reader.bind(server.readerDn, server.readerPassword);
      const asReader = await reader.search(groupDn(1), { scope: 'base', attributes: ['cn', 'member'] });
      expect(asReader.searchEntries[0]?.['cn']).toBe('group00001');
      const own = await reader.search(server.readerDn, { scope: 'base', attributes: ['userPassword'] });
      expect(own.searchEntries).toHaveLength(1);
      expect(own.searchEntries[0]?.['userPassword'] ?? []).toEqual([]);
      // slapd hides even the existence of entries from anonymous: "no such object".
      await expect(anonymous.search(server.suffix, { filter: '(objectClass=*)' })).rejects.toThrow(/0x20/);
    } finally {
      await reader.unbind();
      await anonymous.unbind();
    }
  });

  it('keeps live changes across a restart and after being killed', async () => {
    const client = await server.client();
    await client.add(`uid=live1,ou=people,${server.suffix}`, {
      objectClass: ['inetOrgPerson'],
      uid: 'live1',
      cn: 'Live One',
      sn: 'One',
    });
    await client.unbind();
    await server.restart();
    const pidBefore = server.pid;
    await server.kill();
    expect(server.pid).toBeUndefined();
    await server.restart();
    expect(server.pid).not.toBe(pidBefore);
    const after = await server.client();
    try {
      const { searchEntries } = await after.search(`uid=live1,ou=people,${server.suffix}`, { scope: 'base', attributes: ['cn'] });
      expect(searchEntries[0]?.['cn']).toBe('Live One');
    } finally {
      await after.unbind();
    }
  });
});

describe('startSlapd with a size limit and without paging', () => {
  let server: SlapdServer;
  beforeAll(async () => {
    server = await startSlapd({ data: { users: 30, groups: 1, membersPerGroup: 2 }, sizeLimit: 10, pagedResults: false });
  });
  afterAll(async () => {
    await server.stop();
  });

  it('caps plain searches and refuses paged ones', async () => {
    const client = new Client({ url: server.url });
    try {
      await client.bind(server.readerDn, server.readerPassword);
      await expect(client.search(server.suffix, { filter: '(objectClass=*)', attributes: ['cn'] })).rejects.toThrow(/0x4\b/);
      const narrow = await client.search(`ou=groups,${server.suffix}`, { filter: '(objectClass=*)', attributes: ['cn'] });
      expect(narrow.searchEntries).toHaveLength(2);
      await expect(client.search(server.suffix, { attributes: ['cn'], paged: { pageSize: 5 } })).rejects.toThrow(/0xb\b/);
    } finally {
      await client.unbind();
    }
  });
});

describe('startSlapd with TLS', () => {
  let server: SlapdServer;
  let otherCaDir: string;
  beforeAll(async () => {
    server = await startSlapd({ tls: true, suffix: 'o=tls-test' });
    otherCaDir = await mkdtemp(join(tmpdir(), 'dirsync-other-ca-'));
  });
  afterAll(async () => {
    await server.stop();
    await rm(otherCaDir, { recursive: true, force: true });
  });

  it('serves ldaps:// and StartTLS with a certificate signed by its CA', async () => {
    expect(server.ldapsUrl).toMatch(/^ldaps:\/\/127\.0\.0\.1:\d+$/);
    const ldaps = new Client({ url: server.ldapsUrl as string, tlsOptions: { ca: [server.tls?.caPem as string] } });
    await ldaps.bind(server.readerDn, server.readerPassword);
    expect(ldaps.isBound).toBe(true);
    await ldaps.unbind();
    const starttls = new Client({ url: server.url });
    await starttls.startTLS({ ca: [server.tls?.caPem as string], host: '127.0.0.1' });
    await starttls.bind(server.readerDn, server.readerPassword);
    expect(starttls.isBound).toBe(true);
    await starttls.unbind();
  });

  it('is rejected by a client trusting another CA', async () => {
    const other = await createTestCertificates(otherCaDir);
    const client = new Client({ url: server.ldapsUrl as string, tlsOptions: { ca: [other.caPem] } });
    await expect(client.bind(server.readerDn, server.readerPassword)).rejects.toThrow(/certificate/i);
    await client.unbind();
  });
});
