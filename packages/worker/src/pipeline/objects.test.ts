import type { CanonicalObject } from '@dirsync/providers';
import { combineRecords, mergeAttributes, type PreparedObject, prepareObject } from './objects.ts';

const id = '6e5a1b2c-3d4e-4f50-8172-93a4b5c6d7e8';

function prepared(object: Omit<CanonicalObject, 'externalId' | 'type'>): PreparedObject {
  const result = prepareObject({ externalId: id, type: 'user', ...object });
  if ('rejected' in result) throw new Error(result.rejected);
  return result;
}

const stored = { displayName: 'Ann', department: 'Sales', jobTitle: 'Clerk' };

describe('mergeAttributes', () => {
  it.each([
    ['a changed attribute replaces, the others stay', { attributes: { department: 'Legal' }, cleared: [] }, { displayName: 'Ann', department: 'Legal', jobTitle: 'Clerk' }],
    ['a cleared attribute goes', { attributes: {}, cleared: ['jobTitle'] }, { displayName: 'Ann', department: 'Sales' }],
    ['a new attribute is added', { attributes: { mail: 'ann@x' }, cleared: [] }, { ...stored, mail: 'ann@x' }],
    ['nothing carried changes nothing', { attributes: {}, cleared: [] }, stored],
    ['clearing what is not stored is harmless', { attributes: {}, cleared: ['surname'] }, stored],
  ])('%s', (_name, partial, expected) => {
    expect(mergeAttributes(stored, partial)).toEqual(expected);
  });
});

describe('combineRecords (two records of one object in one batch)', () => {
  it('merges a later partial record over an earlier whole one, hashing the whole', () => {
    const whole = prepared({ attributes: stored });
    const later = prepared({ attributes: { jobTitle: 'Lead' }, partial: { cleared: ['department'] } });
    const combined = combineRecords(whole, later);
    expect(combined.partial).toBeUndefined();
    expect(combined.attributesJson).toBe(prepared({ attributes: { displayName: 'Ann', jobTitle: 'Lead' } }).attributesJson);
    expect(combined.contentHash).toBe(prepared({ attributes: { displayName: 'Ann', jobTitle: 'Lead' } }).contentHash);
  });

  it('keeps two partial records partial, with what either carried or cleared', () => {
    const first = prepared({ attributes: { displayName: 'Ann B' }, partial: { cleared: ['jobTitle'] } });
    const second = prepared({ attributes: { jobTitle: 'Lead' }, partial: { cleared: ['mail'] }, repeat: true });
    const combined = combineRecords(first, second);
    expect(combined.partial).toEqual({ attributes: { displayName: 'Ann B', jobTitle: 'Lead' }, cleared: ['mail'] });
    // The first listing was in this batch: the object is counted once, here.
    expect(combined.repeat).toBe(false);
  });

  it('lets a later whole record win', () => {
    const first = prepared({ attributes: { displayName: 'X' }, partial: { cleared: [] } });
    const second = prepared({ attributes: stored });
    expect(combineRecords(first, second)).toBe(second);
  });
});
