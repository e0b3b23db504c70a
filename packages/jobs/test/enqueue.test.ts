import type { SyncJobData } from '@dirsync/contracts';
import { randomUUID } from 'node:crypto';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { createTestQueuePrefix, testRedisUrl, waitFor } from '@dirsync/testkit';
import {
  createEnqueueClient,
  defaultSyncJobOptions,
  InvalidJobPayloadError,
  releaseWaitingSlot,
  scheduledJobId,
  SYNC_QUEUE,
  syncBackoffStrategy,
  type EnqueueClient,
} from '../src/index.ts';

// Each test gets its own queue prefix: a worker taking "the next job" must only see that
// test's jobs.
interface Harness {
  prefix: string;
  client: EnqueueClient;
  queue: Queue;
  newClient(): EnqueueClient;
  newWorker(processor?: (job: Job) => Promise<unknown>): Worker;
}

const teardown: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  while (teardown.length > 0) await teardown.pop()?.();
});

function harness(label: string): Harness {
  const { prefix, cleanup } = createTestQueuePrefix(`jobs-${label}`);
  teardown.push(cleanup);
  const newClient = () => {
    const client = createEnqueueClient({ connection: testRedisUrl, prefix });
    teardown.push(() => client.close());
    return client;
  };
  const queue = new Queue(SYNC_QUEUE, { connection: { url: testRedisUrl }, prefix });
  teardown.push(() => queue.close());
  const newWorker = (processor?: (job: Job) => Promise<unknown>) => {
    const connection = new Redis(testRedisUrl, { maxRetriesPerRequest: null });
    const worker = new Worker(SYNC_QUEUE, processor ?? null, {
      connection,
      prefix,
      autorun: processor !== undefined,
      settings: { backoffStrategy: syncBackoffStrategy },
    });
    teardown.push(async () => {
      await worker.close();
      connection.disconnect();
    });
    return worker;
  };
  return { prefix, client: newClient(), queue, newClient, newWorker };
}

async function waitingJobs(queue: Queue): Promise<Array<{ id: string; data: SyncJobData }>> {
  const jobs = await queue.getJobs(['wait', 'prioritized', 'delayed']);
  return jobs.map((job) => ({ id: String(job.id), data: job.data as SyncJobData }));
}

test('a first request queues a job carrying a fresh run id and no secret', async () => {
  const { client, queue } = harness('first');
  const integrationId = randomUUID();
  const result = await client.enqueueSync({ integrationId, mode: 'delta', trigger: 'api', requestedBy: 'ops@example.com' });
  expect(result).toMatchObject({ mode: 'delta', dryRun: false, deduplicated: false, upgraded: false });
  expect(result.runId).toMatch(/^[0-9a-f-]{36}$/);
  expect(await waitingJobs(queue)).toEqual([
    {
      id: result.jobId,
      data: { integrationId, runId: result.runId, mode: 'delta', trigger: 'api', dryRun: false, requestedBy: 'ops@example.com' },
    },
  ]);
  const job = await queue.getJob(result.jobId);
  expect(job?.opts.attempts).toBe(defaultSyncJobOptions.attempts);
  expect(job?.opts.backoff).toEqual(defaultSyncJobOptions.backoff);
});

test('a second request while one waits returns the waiting job', async () => {
  const { client, queue } = harness('dedup');
  const integrationId = randomUUID();
  const first = await client.enqueueSync({ integrationId, mode: 'delta', trigger: 'schedule' });
  const second = await client.enqueueSync({ integrationId, mode: 'delta', trigger: 'manual' });
  expect(second).toEqual({ ...first, deduplicated: true });
  // A different integration is not affected.
  const other = await client.enqueueSync({ integrationId: randomUUID(), mode: 'delta', trigger: 'manual' });
  expect(other.deduplicated).toBe(false);
  expect(await waitingJobs(queue)).toHaveLength(2);
});

test('a full request upgrades a waiting delta; a delta request is satisfied by a waiting full', async () => {
  const { client, queue } = harness('upgrade');
  const integrationId = randomUUID();
  const delta = await client.enqueueSync({ integrationId, mode: 'delta', trigger: 'schedule' });
  const full = await client.enqueueSync({ integrationId, mode: 'full', trigger: 'password_update' });
  expect(full).toEqual({ jobId: delta.jobId, runId: delta.runId, mode: 'full', dryRun: false, deduplicated: true, upgraded: true });
  const [waiting, ...rest] = await waitingJobs(queue);
  expect(rest).toHaveLength(0);
  expect(waiting?.data).toMatchObject({ runId: delta.runId, mode: 'full', trigger: 'schedule' });

  const laterDelta = await client.enqueueSync({ integrationId, mode: 'delta', trigger: 'manual' });
  expect(laterDelta).toEqual({ ...full, upgraded: false });
  const laterFull = await client.enqueueSync({ integrationId, mode: 'full', trigger: 'manual' });
  expect(laterFull).toEqual({ ...full, upgraded: false });
  expect(await waitingJobs(queue)).toHaveLength(1);
});

test('dry runs are never merged with real runs', async () => {
  const { client, queue } = harness('dry');
  const integrationId = randomUUID();
  const real = await client.enqueueSync({ integrationId, mode: 'delta', trigger: 'manual' });
  const dry = await client.enqueueSync({ integrationId, mode: 'full', trigger: 'manual', dryRun: true });
  expect(dry).toMatchObject({ dryRun: true, mode: 'full', deduplicated: false });
  expect(dry.jobId).not.toBe(real.jobId);
  // The dry full did not upgrade the real delta.
  expect((await queue.getJob(real.jobId))?.data).toMatchObject({ mode: 'delta', dryRun: false });
  const dryAgain = await client.enqueueSync({ integrationId, mode: 'delta', trigger: 'manual', dryRun: true });
  expect(dryAgain).toMatchObject({ jobId: dry.jobId, deduplicated: true, mode: 'full' });
  expect(await waitingJobs(queue)).toHaveLength(2);
});

test('20 concurrent requests from several clients yield one job', async () => {
  const h = harness('concurrent');
  const clients = [h.client, h.newClient(), h.newClient(), h.newClient()];
  const integrationId = randomUUID();
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      clients[i % clients.length]!.enqueueSync({ integrationId, mode: 'delta', trigger: 'api' }),
    ),
  );
  expect(new Set(results.map((r) => r.jobId)).size).toBe(1);
  expect(new Set(results.map((r) => r.runId)).size).toBe(1);
  expect(results.filter((r) => !r.deduplicated)).toHaveLength(1);
  expect(await waitingJobs(h.queue)).toHaveLength(1);
});

test('concurrent full and delta requests end as one full job', async () => {
  const h = harness('concurrent-mixed');
  const clients = [h.client, h.newClient(), h.newClient()];
  const integrationId = randomUUID();
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      clients[i % clients.length]!.enqueueSync({ integrationId, mode: i % 4 === 3 ? 'full' : 'delta', trigger: 'api' }),
    ),
  );
  expect(new Set(results.map((r) => r.runId)).size).toBe(1);
  const waiting = await waitingJobs(h.queue);
  expect(waiting).toHaveLength(1);
  expect(waiting[0]?.data.mode).toBe('full');
  // Every full request was told it will get a full sync.
  for (const [i, result] of results.entries()) if (i % 4 === 3) expect(result.mode).toBe('full');
});

test('once the job is active a new request queues a new job, released or not', async () => {
  const h = harness('active');
  const worker = h.newWorker();
  const integrationId = randomUUID();

  // The worker releases the slot at job start, as documented.
  const first = await h.client.enqueueSync({ integrationId, mode: 'full', trigger: 'manual' });
  const active = await worker.getNextJob('token-1');
  expect(active?.id).toBe(first.jobId);
  expect(await releaseWaitingSlot(active!)).toBe(true);
  expect(await releaseWaitingSlot(active!)).toBe(false);
  const second = await h.client.enqueueSync({ integrationId, mode: 'delta', trigger: 'manual' });
  expect(second.deduplicated).toBe(false);
  expect(second.jobId).not.toBe(first.jobId);
  expect(second.mode).toBe('delta');

  // A worker that never releases (crashed between taking the job and releasing): the client
  // notices the key points at a started job and queues a new one anyway.
  const active2 = await worker.getNextJob('token-2');
  expect(active2?.id).toBe(second.jobId);
  const third = await h.client.enqueueSync({ integrationId, mode: 'full', trigger: 'manual' });
  expect(third.deduplicated).toBe(false);
  expect(third.jobId).not.toBe(second.jobId);
  // The running delta was not turned into a full.
  expect((await h.queue.getJob(second.jobId))?.data).toMatchObject({ mode: 'delta' });
  expect((await waitingJobs(h.queue)).map((j) => j.id)).toEqual([third.jobId]);
});

test('a schedule slot enqueued twice is one job, even after it started', async () => {
  const h = harness('slot');
  const worker = h.newWorker();
  const integrationId = randomUUID();
  const slot = new Date(Date.UTC(2024, 4, 1, 10, 5));
  const request = { integrationId, mode: 'delta', trigger: 'schedule', scheduledFor: slot.toISOString() } as const;
  const first = await h.client.enqueueSync(request);
  expect(first.jobId).toBe(scheduledJobId(integrationId, 'delta', slot.getTime()));
  expect(first.deduplicated).toBe(false);
  expect(await h.client.enqueueSync(request)).toEqual({ ...first, deduplicated: true });

  await releaseWaitingSlot((await worker.getNextJob('token'))!);
  // Replaying the slot (a scheduler that crashed after enqueueing) finds the job it made.
  expect(await h.client.enqueueSync(request)).toEqual({ ...first, deduplicated: true });
  expect(await waitingJobs(h.queue)).toHaveLength(0);
});

test('a scheduled request joins a waiting manual job instead of adding its slot job', async () => {
  const h = harness('slot-dedup');
  const integrationId = randomUUID();
  const manual = await h.client.enqueueSync({ integrationId, mode: 'delta', trigger: 'manual' });
  const scheduled = await h.client.enqueueSync({
    integrationId,
    mode: 'full',
    trigger: 'schedule',
    scheduledFor: new Date(Date.UTC(2024, 4, 1, 2)).toISOString(),
  });
  expect(scheduled).toMatchObject({ jobId: manual.jobId, runId: manual.runId, deduplicated: true, upgraded: true, mode: 'full' });
  expect(await waitingJobs(h.queue)).toHaveLength(1);
});

test('an invalid request is refused with a clear error and queues nothing', async () => {
  const { client, queue } = harness('invalid');
  await expect(
    client.enqueueSync({ integrationId: 'nope', mode: 'sometimes', trigger: 'api' } as never),
  ).rejects.toThrow(InvalidJobPayloadError);
  await expect(client.enqueueSync({ integrationId: randomUUID(), mode: 'full', trigger: 'api', secret: 'x' } as never)).rejects.toThrow(
    /^invalid sync request: Unrecognized key: "secret"$/,
  );
  expect(await waitingJobs(queue)).toHaveLength(0);
});

test('a failed attempt is retried after a jittered exponential delay', async () => {
  const h = harness('retry');
  const integrationId = randomUUID();
  const failedOnce = new Promise<void>((resolve) => {
    const worker = h.newWorker(async (job) => {
      await releaseWaitingSlot(job);
      throw new Error('directory unavailable');
    });
    worker.on('failed', () => resolve());
  });
  const result = await h.client.enqueueSync({ integrationId, mode: 'delta', trigger: 'api' });
  await failedOnce;
  const job = await waitFor(async () => {
    const current = await h.queue.getJob(result.jobId);
    return current !== undefined && (await current.getState()) === 'delayed' ? current : undefined;
  }, { what: 'the job to wait for its retry' });
  const base = defaultSyncJobOptions.backoff.delay;
  expect(job.attemptsMade).toBe(1);
  expect(job.delay).toBeGreaterThanOrEqual(base / 2);
  expect(job.delay).toBeLessThanOrEqual(base);
  // The slot was released at start, so a new request does not merge into the retrying job.
  const next = await h.client.enqueueSync({ integrationId, mode: 'delta', trigger: 'api' });
  expect(next.deduplicated).toBe(false);
});
