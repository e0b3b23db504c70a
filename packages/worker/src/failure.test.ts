import { NotFoundError, SecretDecryptError } from '@dirsync/db';
import { InvalidJobPayloadError, parseSyncJob } from '@dirsync/jobs';
import { AuthError, ConfigError, CursorRejectedError, ProtocolError, UnavailableError } from '@dirsync/providers';
import { classifyFailure } from './failure.ts';
import { LockLostError } from './lock.ts';

function invalidPayload(): InvalidJobPayloadError {
  try {
    parseSyncJob({ mode: 'sideways' });
  } catch (error) {
    if (error instanceof InvalidJobPayloadError) return error;
  }
  throw new Error('expected the payload to be refused');
}

test.each([
  ['bad credentials', new AuthError('invalid credentials for cn=reader'), false, 'auth: invalid credentials for cn=reader'],
  ['bad settings', new ConfigError('base DN ou=nowhere does not exist'), false, 'config: base DN ou=nowhere does not exist'],
  ['a busy server', new UnavailableError('server busy'), true, 'unavailable: server busy'],
  ['a server breaking the protocol', new ProtocolError('a message claims 2147483654 bytes'), false, 'protocol: a message claims 2147483654 bytes'],
  ['a rejected cursor that escaped the pipeline', new CursorRejectedError('expired'), false, 'cursor_rejected: expired'],
  ['an undecryptable secret', new SecretDecryptError('tampered', 'stored secret failed authentication'), false, 'stored secret failed authentication'],
  ['a missing record', new NotFoundError('run x not found'), false, 'run x not found'],
  ['a lost lock', new LockLostError('the integration lock expired'), true, 'the integration lock expired'],
  ['a dropped connection', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), true, 'read ECONNRESET'],
  ['something thrown that is not an Error', 'boom', true, 'unknown error'],
] as const)('%s → retry %s', (_name, error, retry, message) => {
  expect(classifyFailure(error)).toEqual({ retry, message });
});

test('an invalid payload is never retried', () => {
  expect(classifyFailure(invalidPayload()).retry).toBe(false);
});

test('messages are one line and bounded', () => {
  const verdict = classifyFailure(new UnavailableError(`first line\nsecond line\t${'x'.repeat(2000)}`));
  expect(verdict.message).not.toMatch(/[\n\t]/);
  expect(verdict.message.length).toBeLessThanOrEqual(500);
  expect(verdict.message.startsWith('unavailable: first line second line')).toBe(true);
});
