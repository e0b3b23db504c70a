import { decideObject } from './decide.ts';

const stored = { contentHash: 'h1', dn: 'uid=a,dc=x', deleted: false };

test.each([
  ['nothing stored', undefined, { contentHash: 'h1', dn: 'uid=a,dc=x' }, 'create'],
  ['same hash and DN', stored, { contentHash: 'h1', dn: 'uid=a,dc=x' }, 'unchanged'],
  ['another hash', stored, { contentHash: 'h2', dn: 'uid=a,dc=x' }, 'update'],
  ['a DN change alone (rename or move)', stored, { contentHash: 'h1', dn: 'uid=b,dc=x' }, 'update'],
  ['a DN that disappears', stored, { contentHash: 'h1', dn: null }, 'update'],
  ['soft-deleted and back unchanged', { ...stored, deleted: true }, { contentHash: 'h1', dn: 'uid=a,dc=x' }, 'restore'],
  ['soft-deleted and back changed', { ...stored, deleted: true }, { contentHash: 'h2', dn: null }, 'restore'],
] as const)('%s → %s', (_name, before, incoming, expected) => {
  expect(decideObject(before, incoming)).toBe(expected);
});
