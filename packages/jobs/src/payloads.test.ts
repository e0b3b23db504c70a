import { InvalidJobPayloadError, parseRotateCredentialsJob, parseSyncJob, parseSyncRequest, parseTestConnectionJob } from './payloads.ts';

const integrationId = '0b6a53f4-5d0b-4c61-9d7e-4a0f0c1b2d3e';
const runId = '7f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';

const validJob = { integrationId, runId, mode: 'delta', trigger: 'schedule', dryRun: false };

describe('sync job payload', () => {
  test('accepts a complete payload', () => {
    const job = parseSyncJob({ ...validJob, requestedBy: 'scheduler', scheduledFor: '2024-05-01T10:05:00.000Z' });
    expect(job).toEqual({ ...validJob, requestedBy: 'scheduler', scheduledFor: '2024-05-01T10:05:00.000Z' });
  });

  test.each([
    ['integrationId', { ...validJob, integrationId: 'not-a-uuid' }, /integrationId: /],
    ['runId', { ...validJob, runId: undefined }, /runId: /],
    ['mode', { ...validJob, mode: 'incremental' }, /mode: /],
    ['trigger', { ...validJob, trigger: 'cron' }, /trigger: /],
    ['dryRun', { ...validJob, dryRun: 'no' }, /dryRun: /],
    ['scheduledFor', { ...validJob, scheduledFor: 'yesterday' }, /scheduledFor: must be an ISO 8601 date-time/],
    ['requestedBy', { ...validJob, requestedBy: '  ' }, /requestedBy: must not be empty/],
  ])('refuses a bad %s with a message naming it', (_field, payload, message) => {
    expect(() => parseSyncJob(payload)).toThrow(message);
  });

  test('refuses unknown keys and never echoes their values', () => {
    let caught: unknown;
    try {
      parseSyncJob({ ...validJob, password: 'hunter2-secret' });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidJobPayloadError);
    const error = caught as InvalidJobPayloadError;
    expect(error.message).toMatch(/password/);
    expect(error.message).not.toMatch(/hunter2/);
    expect(error.problems).toHaveLength(1);
  });

  test('lists every problem in one line', () => {
    expect(() => parseSyncJob({ integrationId: 'x' })).toThrow(
      /^invalid sync job: integrationId: .*; runId: .*; mode: .*; trigger: .*; dryRun: [^\n]*$/,
    );
  });
});

describe('sync request', () => {
  test('defaults dryRun to false and leaves runId to the client', () => {
    expect(parseSyncRequest({ integrationId, mode: 'full', trigger: 'manual' })).toEqual({
      integrationId,
      mode: 'full',
      trigger: 'manual',
      dryRun: false,
    });
  });

  test('accepts an offset date-time for scheduledFor', () => {
    const request = parseSyncRequest({ integrationId, mode: 'delta', trigger: 'schedule', scheduledFor: '2024-05-01T12:05:00+02:00' });
    expect(request.scheduledFor).toBe('2024-05-01T12:05:00+02:00');
  });

  test('refuses a request without a mode', () => {
    expect(() => parseSyncRequest({ integrationId, trigger: 'api' })).toThrow(/^invalid sync request: mode: /);
  });
});

describe('control and rotation payloads', () => {
  test('test-connection needs an integration and a request id', () => {
    expect(parseTestConnectionJob({ integrationId, requestId: runId })).toEqual({ integrationId, requestId: runId });
    expect(() => parseTestConnectionJob({ integrationId })).toThrow(/requestId/);
  });

  test('rotate-credentials accepts only schedule or manual triggers', () => {
    expect(parseRotateCredentialsJob({ integrationId, trigger: 'manual' })).toEqual({ integrationId, trigger: 'manual' });
    expect(() => parseRotateCredentialsJob({ integrationId, trigger: 'api' })).toThrow(/trigger/);
  });
});
