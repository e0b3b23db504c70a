import { CursorRejectedError } from '@dirsync/providers';
import { fallbackToFull, planMode } from './mode.ts';

test.each([
  ['full requested', 'full', { usn: 1 }, 'full', /^full sync requested$/],
  ['full requested without cursor', 'full', null, 'full', /^full sync requested$/],
  ['delta with a cursor', 'delta', { usn: 1 }, 'delta', /^delta sync requested$/],
  ['delta without a cursor', 'delta', null, 'full', /^no cursor/],
  ['delta with an undefined cursor', 'delta', undefined, 'full', /^no cursor/],
] as const)('%s → %s', (_name, requested, cursor, mode, reason) => {
  const plan = planMode(requested, cursor);
  expect(plan.mode).toBe(mode);
  expect(plan.reason).toMatch(reason);
});

test('a rejected cursor falls back to full and gives the provider reason', () => {
  const plan = fallbackToFull(new CursorRejectedError('the directory was restored from backup (invocationId changed)'));
  expect(plan.mode).toBe('full');
  expect(plan.reason).toContain('the directory was restored from backup (invocationId changed)');
});
