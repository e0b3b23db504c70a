import {
  checkSecretJobSchema,
  connectionReportSchema,
  createIntegrationBody,
  emptyRunCounts,
  finalRunStatuses,
  idParams,
  integrationKindSchema,
  problemSchema,
  requestDate,
  rotateConnectorJobSchema,
  runCountsSchema,
  runSchema,
  runStatuses,
  runStatusSchema,
  setSecretBody,
  syncJobSchema,
  syncModeSchema,
  syncRequestBody,
  syncRequestSchema,
  syncTriggerSchema,
  verifyConsentJobSchema,
} from '../src/index.ts';

const uuid = '0b6a53f4-5d0b-4c61-9d7e-4a0f0c1b2d3e';
const otherUuid = '7f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0';

describe('vocabulary', () => {
  test.each([
    ['kind', integrationKindSchema, 'entra_id', 'azure'],
    ['mode', syncModeSchema, 'delta', 'incremental'],
    ['trigger', syncTriggerSchema, 'password_update', 'cron'],
    ['status', runStatusSchema, 'retrying', 'done'],
  ] as const)('%s: accepts %s, refuses %s', (_name, schema, good, bad) => {
    expect(schema.parse(good)).toBe(good);
    expect(schema.safeParse(bad).success).toBe(false);
  });

  test('final statuses are run statuses, and exclude the ones that still change', () => {
    for (const status of finalRunStatuses) expect(runStatuses).toContain(status);
    expect(finalRunStatuses).not.toContain('queued');
    expect(finalRunStatuses).not.toContain('running');
    expect(finalRunStatuses).not.toContain('retrying');
  });
});

describe('run counts', () => {
  test('a missing count defaults to 0, given counts are kept', () => {
    expect(runCountsSchema.parse({ created: 3, membershipsAdded: 7 })).toEqual({
      ...emptyRunCounts(),
      created: 3,
      membershipsAdded: 7,
    });
  });

  test('every count of an empty report is 0', () => {
    const counts = emptyRunCounts();
    expect(Object.keys(counts).sort()).toEqual(
      ['created', 'deleted', 'failed', 'fetched', 'membershipsAdded', 'membershipsRemoved', 'restored', 'unchanged', 'updated', 'wouldDelete'].sort(),
    );
    expect(Object.values(counts).every((value) => value === 0)).toBe(true);
  });

  test.each([
    ['negative', { deleted: -1 }],
    ['fractional', { fetched: 1.5 }],
    ['text', { created: '3' }],
  ])('refuses a %s count', (_what, counts) => {
    expect(runCountsSchema.safeParse(counts).success).toBe(false);
  });

  test('leaves out columns that are not counts (a run row parsed into its counts)', () => {
    expect(runCountsSchema.parse({ id: uuid, status: 'failed', created: 1 })).not.toHaveProperty('status');
  });
});

describe('job payloads', () => {
  const sync = { integrationId: uuid, runId: otherUuid, mode: 'delta', trigger: 'schedule', dryRun: false };

  test.each([
    ['sync job with an unknown key (a secret must not ride along)', syncJobSchema, { ...sync, password: 'x' }],
    ['sync job without a run', syncJobSchema, { ...sync, runId: undefined }],
    ['sync job in an unknown mode', syncJobSchema, { ...sync, mode: 'incremental' }],
    ['sync request with a blank requester', syncRequestSchema, { integrationId: uuid, mode: 'full', trigger: 'api', requestedBy: '  ' }],
    ['sync request with a date that is not ISO 8601', syncRequestSchema, { integrationId: uuid, mode: 'full', trigger: 'api', scheduledFor: 'tomorrow' }],
    ['check-secret job carrying the secret', checkSecretJobSchema, { integrationId: uuid, requestId: uuid, candidateId: otherUuid, secret: 'x' }],
    ['verify-consent job with a short nonce', verifyConsentJobSchema, { requestId: uuid, nonce: 'short' }],
    ['rotation job with an unknown trigger', rotateConnectorJobSchema, { connectorId: uuid, trigger: 'api' }],
  ] as const)('refuses a %s', (_what, schema, payload) => {
    expect(schema.safeParse(payload).success).toBe(false);
  });

  test('a sync request is not a dry run unless asked', () => {
    expect(syncRequestSchema.parse({ integrationId: uuid, mode: 'full', trigger: 'manual' }).dryRun).toBe(false);
  });

  test('a connection report keeps its checks', () => {
    const report = { ok: false, checks: [{ name: 'Bind', ok: false, detail: 'invalid credentials' }] };
    expect(connectionReportSchema.parse(report)).toEqual(report);
  });
});

describe('API wire shapes', () => {
  test('a path id must be a uuid', () => {
    expect(idParams.safeParse({ id: uuid }).success).toBe(true);
    expect(idParams.safeParse({ id: "1' or 1=1" }).success).toBe(false);
  });

  test.each([
    ['year 0000', '0000-01-01T00:00:00Z'],
    ['an offset beyond ±15:59', '2024-01-01T00:00:00+16:00'],
    ['no offset', '2024-01-01T00:00:00'],
  ])('a request date refuses %s (PostgreSQL would)', (_what, value) => {
    expect(requestDate.safeParse(value).success).toBe(false);
  });

  test.each([
    ['a carriage return', 'pass\r\nQUIT'],
    ['a NUL', 'pass\0'],
    ['nothing', ''],
  ])('a secret refuses %s', (_what, secret) => {
    expect(setSecretBody.safeParse({ secret }).success).toBe(false);
  });

  test('an integration body refuses unknown keys and unknown kinds', () => {
    const body = { kind: 'ldap', name: 'corp', settings: {} };
    expect(createIntegrationBody.safeParse(body).success).toBe(true);
    expect(createIntegrationBody.safeParse({ ...body, kind: 'okta' }).success).toBe(false);
    expect(createIntegrationBody.safeParse({ ...body, admin: true }).success).toBe(false);
  });

  test('a sync request defaults to a delta that writes', () => {
    expect(syncRequestBody.parse({})).toEqual({ mode: 'delta', dryRun: false });
    expect(syncRequestBody.safeParse({ wait: 301 }).success).toBe(false);
  });

  test('a run answer carries its counts through the shared counts schema', () => {
    expect(runSchema.shape.counts).toBe(runCountsSchema);
  });

  test('a problem keeps extension members (a 410 carries the head)', () => {
    const problem = { type: '/v1/problems/cursor-expired', title: 'Gone', status: 410, detail: 'resync', head: '42' };
    expect(problemSchema.parse(problem)).toEqual(problem);
    expect(problemSchema.safeParse({ title: 'Gone', status: 410 }).success).toBe(false);
  });
});
