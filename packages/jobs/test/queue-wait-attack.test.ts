import { startThrowawayRedis, waitFor, type ThrowawayRedis } from '@dirsync/testkit';
import { createEnqueueClient, createRotationEnqueueClient, QueueUnavailableError } from '../src/index.ts';

// Producers used by a command line, given a bound on the wait for Redis: with Redis away they
// fail with QueueUnavailableError once it has passed (BullMQ alone waits for ever), and with
// Redis there they enqueue as usual.

let redis: ThrowawayRedis;

beforeAll(async () => {
  redis = await startThrowawayRedis();
});

afterAll(async () => {
  await redis.stop();
});

const integrationId = '00000000-0000-4000-8000-000000000001';
const connectorId = '00000000-0000-4000-8000-000000000002';

test('with Redis away, a bounded sync and rotation request fail as unavailable once the bound has passed; with Redis back they enqueue', async () => {
  await redis.stop();
  const sync = createEnqueueClient({ connection: redis.url, prefix: 'wait-attack', readyTimeoutMs: 1_000 });
  const rotation = createRotationEnqueueClient({ connection: redis.url, prefix: 'wait-attack', readyTimeoutMs: 1_000 });
  try {
    const started = performance.now();
    await expect(sync.enqueueSync({ integrationId, mode: 'delta', trigger: 'manual' })).rejects.toBeInstanceOf(QueueUnavailableError);
    await expect(rotation.enqueueRotation({ connectorId, trigger: 'manual', requestedBy: 'test' })).rejects.toBeInstanceOf(QueueUnavailableError);
    const took = performance.now() - started;
    expect(took).toBeGreaterThanOrEqual(1_900);
    expect(took).toBeLessThan(30_000);

    await redis.start();
    // The clients reconnect on their own schedule (backing off to 2 s between tries): a request
    // made before then is refused as before, one after it goes through.
    const refusedOnly = (error: unknown) => {
      if (error instanceof QueueUnavailableError) return undefined;
      throw error;
    };
    const synced = await waitFor(() => sync.enqueueSync({ integrationId, mode: 'delta', trigger: 'manual' }).catch(refusedOnly), { timeoutMs: 20_000, what: 'the sync client to enqueue' });
    expect(synced.deduplicated).toBe(false);
    const rotated = await waitFor(() => rotation.enqueueRotation({ connectorId, trigger: 'manual', requestedBy: 'test' }).catch(refusedOnly), { timeoutMs: 20_000, what: 'the rotation client to enqueue' });
    expect(rotated.deduplicated).toBe(false);
  } finally {
    await sync.close();
    await rotation.close();
  }
}, 60_000);
