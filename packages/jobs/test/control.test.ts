import { randomUUID } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import { createTestQueuePrefix, testRedisUrl, waitFor } from '@dirsync/testkit';
import {
  CONTROL_JOB_NAMES,
  CONTROL_QUEUE,
  ControlJobFailedError,
  ControlTimeoutError,
  createControlClient,
  InvalidJobPayloadError,
  parseCheckSecretJob,
  type ControlClient,
} from '../src/index.ts';

const teardown: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (teardown.length > 0) await teardown.pop()?.();
});

function harness(label: string) {
  const { prefix, cleanup } = createTestQueuePrefix(`control-${label}`);
  teardown.push(cleanup);
  const client: ControlClient = createControlClient({ connection: testRedisUrl, prefix });
  teardown.push(() => client.close());
  const queue = new Queue(CONTROL_QUEUE, { connection: { url: testRedisUrl }, prefix });
  teardown.push(() => queue.close());
  const worker = (processor: (job: Job) => Promise<unknown>) => {
    const w = new Worker(CONTROL_QUEUE, processor, { connection: { url: testRedisUrl, maxRetriesPerRequest: null }, prefix });
    teardown.push(() => w.close(true));
    return w;
  };
  return { client, queue, worker };
}

const integrationId = randomUUID();

test('a request is answered by the worker that takes the job', async () => {
  const { client, worker } = harness('answer');
  const seen: Array<{ name: string; data: unknown }> = [];
  worker(async (job) => {
    seen.push({ name: job.name, data: job.data });
    return { ok: true, checks: [{ name: 'bind', ok: true, detail: `as ${job.name}` }] };
  });
  const report = await client.testConnection(integrationId, { timeoutMs: 10_000, requestedBy: 'api:test' });
  expect(report).toEqual({ ok: true, checks: [{ name: 'bind', ok: true, detail: 'as test-connection' }] });

  const candidateId = randomUUID();
  await client.checkSecret(integrationId, candidateId, { timeoutMs: 10_000 });
  expect(seen).toEqual([
    { name: CONTROL_JOB_NAMES.testConnection, data: { integrationId, requestId: expect.any(String), requestedBy: 'api:test' } },
    { name: CONTROL_JOB_NAMES.checkSecret, data: { integrationId, candidateId, requestId: expect.any(String) } },
  ]);
});

test('a failed job becomes ControlJobFailedError with the worker message', async () => {
  const { client, worker } = harness('fail');
  worker(async () => {
    throw new Error('integration 42 not found');
  });
  const failure = client.testConnection(integrationId, { timeoutMs: 10_000 });
  await expect(failure).rejects.toBeInstanceOf(ControlJobFailedError);
  await expect(failure).rejects.toThrow('Test Connection: integration 42 not found');
});

test('without a worker the request times out and its job is removed', async () => {
  const { client, queue } = harness('nobody');
  const failure = client.testConnection(integrationId, { timeoutMs: 300 });
  await expect(failure).rejects.toBeInstanceOf(ControlTimeoutError);
  await expect(failure).rejects.toMatchObject({ taken: false, message: expect.stringMatching(/no worker took the request within 0.3 s/) });
  expect(await queue.getJobCounts('waiting', 'prioritized', 'active')).toEqual({ waiting: 0, prioritized: 0, active: 0 });
});

test('a job a worker is still running times out as taken and is left to finish', async () => {
  const { client, queue, worker } = harness('slow');
  let release: () => void = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  worker(async () => {
    await gate;
    return { ok: true, checks: [] };
  });
  const failure = client.testConnection(integrationId, { timeoutMs: 500 });
  await expect(failure).rejects.toMatchObject({ taken: true, message: expect.stringMatching(/did not finish within 0.5 s/) });
  release();
  await waitFor(async () => (await queue.getJobCounts('completed')).completed === 1, { what: 'the slow job to complete' });
});

test('an answer of the wrong shape is refused', async () => {
  const { client, worker } = harness('shape');
  worker(async () => ({ ok: 'yes' }));
  await expect(client.testConnection(integrationId, { timeoutMs: 10_000 })).rejects.toThrow(/wrong shape/);
});

test('check-secret payloads are strict and never echo values', () => {
  const valid = { integrationId, requestId: randomUUID(), candidateId: randomUUID() };
  expect(parseCheckSecretJob(valid)).toEqual(valid);
  expect(() => parseCheckSecretJob({ ...valid, secret: 'hunter2-pw' })).toThrow(InvalidJobPayloadError);
  expect(() => parseCheckSecretJob({ ...valid, secret: 'hunter2-pw' })).not.toThrow(/hunter2/);
});
