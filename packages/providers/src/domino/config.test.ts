import { inspect } from 'node:util';
import { createProvider, validateSettings } from '../index.ts';
import { dominoScopeOf, dominoSettingsSchema } from './config.ts';
import { dominoScopeFingerprint, parseDominoCursor } from './fetch.ts';

const valid = {
  url: 'ldaps://domino.acme.example',
  bindDn: 'CN=dirsync reader,O=Acme',
  users: { baseDns: ['O=Acme'] },
  groups: { baseDns: ['OU=Groups,O=Acme'] },
};

function problems(settings: unknown): readonly string[] {
  const result = validateSettings('domino', settings);
  return result.ok ? [] : result.problems;
}

describe('Domino settings', () => {
  it('fills Domino defaults', () => {
    expect(dominoSettingsSchema.parse(valid)).toMatchObject({
      users: { baseDns: ['O=Acme'], objectClasses: ['dominoPerson'] },
      groups: { objectClasses: ['dominoGroup'], memberAttributes: ['member'] },
      pageSize: 500,
      paging: 'auto',
      splitAttribute: 'cn',
      deltaMethod: 'auto',
      deltaOverlapSeconds: 300,
      tls: { allowInsecure: false },
    });
  });

  it.each([
    ['no users base', { users: { baseDns: [] } }, /^users\.baseDns: users\.baseDns needs at least one base DN/],
    ['nested group bases', { groups: { baseDns: ['O=Acme', 'OU=Groups,O=Acme'] } }, /^groups\.baseDns: .*lies within/],
    ['an unknown paging mode', { paging: 'always' }, /^paging: paging must be "auto" or "never"/],
    ['a bad split attribute', { splitAttribute: 'c n' }, /^splitAttribute: splitAttribute must be an attribute name/],
    ['an unknown delta method', { deltaMethod: 'usn' }, /^deltaMethod: deltaMethod must be "auto" or "hash"/],
    ['plain LDAP without allowInsecure', { url: 'ldap://domino', tls: { mode: 'none' } }, /^tls\.allowInsecure: /],
    ['an unknown key', { baseDns: ['O=Acme'] }, /unknown setting "baseDns"/],
  ])('reports %s clearly', (_name, change, message) => {
    expect(problems({ ...valid, ...change })).toEqual(expect.arrayContaining([expect.stringMatching(message)]));
  });

  it('accepts the directory root as a base, reading it one level deep unless told otherwise', () => {
    const parsed = dominoSettingsSchema.parse({ ...valid, groups: { baseDns: [''] } });
    expect(parsed.groups.baseDns).toEqual(['']);
    expect(dominoScopeOf(parsed.groups)).toBe('one');
    expect(dominoScopeOf(parsed.users)).toBe('sub');
    expect(dominoScopeOf(dominoSettingsSchema.parse({ ...valid, users: { baseDns: ['O=Acme'], scope: 'one' } }).users)).toBe('one');
    // One-level reads of nested bases are disjoint: the root next to a container is allowed.
    expect(problems({ ...valid, groups: { baseDns: ['', 'OU=Groups,O=Acme'] } })).toEqual([]);
  });

  it.each([
    ['the root with a subtree scope', { groups: { baseDns: [''], scope: 'sub' } }, /^groups\.scope: groups\.scope "sub" with the directory root \(""\) as a base would read every entry/],
    ['the root with a nested base read as a subtree', { groups: { baseDns: ['', 'O=Acme'], scope: 'sub' } }, /^groups\.baseDns: .*lies within ""/],
    ['a blank base', { users: { baseDns: [' '] } }, /^users\.baseDns\[0\]: users base DN is blank; write "" for the directory root/],
    ['an unknown scope', { groups: { baseDns: ['O=Acme'], scope: 'base' } }, /^groups\.scope: groups\.scope must be "one" or "sub"/],
    ['a base listed twice at one level', { groups: { baseDns: ['', ''] } }, /^groups\.baseDns: .*is listed twice/],
  ])('reports %s clearly', (_name, change, message) => {
    expect(problems({ ...valid, ...change })).toEqual(expect.arrayContaining([expect.stringMatching(message)]));
  });

  it('keeps the bind password out of the provider object', () => {
    const provider = createProvider('domino', valid, 'hunter2-secret');
    expect(provider.kind).toBe('domino');
    expect(inspect(provider, { depth: 5, showHidden: true })).not.toContain('hunter2-secret');
  });
});

describe('Domino cursors', () => {
  const settings = dominoSettingsSchema.parse(valid);
  const cursor = { kind: 'domino', method: 'modifyTimestamp', highWater: '20240101000000Z', server: 'ldaps://domino.acme.example:636', scope: dominoScopeFingerprint(settings) };

  it('are accepted for the same server and scope', () => {
    expect(parseDominoCursor(cursor, settings)).toEqual(cursor);
    expect(parseDominoCursor({ ...cursor, method: 'hash', highWater: null }, settings)).toMatchObject({ method: 'hash' });
  });

  it.each([
    ['of another kind', { kind: 'ldap' }, /provider kind "ldap", not "domino"/],
    ['without a high-water mark', { highWater: 'soon' }, /no valid modifyTimestamp high-water mark/],
    ['of another server', { server: 'ldaps://other:636' }, /taken on ldaps:\/\/other:636/],
    ['of another scope', { scope: 'x' }, /base DNs, scopes, filters, object classes or member attributes changed/],
  ])('are rejected when %s', (_name, change, reason) => {
    expect(() => parseDominoCursor({ ...cursor, ...change }, settings)).toThrow(reason);
  });

  it("are rejected when a section's scope changed, and kept for subtree scopes written out", () => {
    expect(() => parseDominoCursor(cursor, dominoSettingsSchema.parse({ ...valid, groups: { baseDns: ['OU=Groups,O=Acme'], scope: 'one' } }))).toThrow(
      /base DNs, scopes, filters/,
    );
    expect(parseDominoCursor(cursor, dominoSettingsSchema.parse({ ...valid, groups: { baseDns: ['OU=Groups,O=Acme'], scope: 'sub' } }))).toEqual(cursor);
    const root = dominoSettingsSchema.parse({ ...valid, groups: { baseDns: [''] } });
    // The root's default scope and the same scope written out select the same entries.
    expect(dominoScopeFingerprint(root)).toBe(dominoScopeFingerprint(dominoSettingsSchema.parse({ ...valid, groups: { baseDns: [''], scope: 'one' } })));
    expect(dominoScopeFingerprint(root)).not.toBe(dominoScopeFingerprint(settings));
  });

  it('are rejected when the delta method became "hash"', () => {
    expect(() => parseDominoCursor(cursor, dominoSettingsSchema.parse({ ...valid, deltaMethod: 'hash' }))).toThrow(/changed to "hash"/);
  });
});
