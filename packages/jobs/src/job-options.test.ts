import { runJobId, scheduledJobId, syncDeduplicationId } from './job-options.ts';

const integrationId = '0b6a53f4-5d0b-4c61-9d7e-4a0f0c1b2d3e';

// The rules BullMQ 6.7 applies to custom job ids (Job.validateOptions).
function bullmqAccepts(id: string): boolean {
  if (`${parseInt(id, 10)}` === id) return false;
  if (id.includes(':') && id.split(':').length !== 3) return false;
  return id !== '0' && !id.startsWith('0:');
}

describe('job ids', () => {
  test('scheduled job ids are deterministic per integration, mode and slot', () => {
    const slot = Date.UTC(2024, 4, 1, 10, 5);
    expect(scheduledJobId(integrationId, 'delta', slot)).toBe(`sched.${integrationId}.delta.${slot}`);
    expect(scheduledJobId(integrationId, 'delta', slot)).toBe(scheduledJobId(integrationId, 'delta', slot));
    expect(scheduledJobId(integrationId, 'full', slot)).not.toBe(scheduledJobId(integrationId, 'delta', slot));
    expect(scheduledJobId(integrationId, 'delta', slot + 300_000)).not.toBe(scheduledJobId(integrationId, 'delta', slot));
  });

  test.each([
    scheduledJobId(integrationId, 'full', 0),
    scheduledJobId(integrationId, 'delta', Date.UTC(2030, 0, 1)),
    runJobId('7f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0'),
    syncDeduplicationId(integrationId, true),
  ])('%s passes BullMQ custom id rules and has no ":"', (id) => {
    expect(bullmqAccepts(id)).toBe(true);
    expect(id).not.toContain(':');
  });

  test('refuses a slot that is not a whole millisecond count', () => {
    expect(() => scheduledJobId(integrationId, 'full', 1.5)).toThrow(RangeError);
    expect(() => scheduledJobId(integrationId, 'full', -1)).toThrow(RangeError);
  });

  test('dry runs and real runs have separate deduplication ids', () => {
    expect(syncDeduplicationId(integrationId, true)).not.toBe(syncDeduplicationId(integrationId, false));
  });
});
