import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { Redis } from 'ioredis';
import { waitFor } from './wait.ts';

export * from './redis-cluster.ts';

/** Redis URL tests use; the machine's own Redis unless TEST_REDIS_URL names another. */
export const testRedisUrl = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

/** A BullMQ key prefix of its own for one test file, removed by `cleanup`. */
export interface TestQueuePrefix {
  readonly prefix: string;
  cleanup(): Promise<void>;
}

/** Makes a unique queue prefix so test files never share queues. */
export function createTestQueuePrefix(label: string): TestQueuePrefix {
  const prefix = `dirsync-test-${label.replace(/[^a-z0-9]/gi, '-').toLowerCase()}-${randomBytes(4).toString('hex')}`;
  return {
    prefix,
    async cleanup() {
      const redis = new Redis(testRedisUrl, { maxRetriesPerRequest: 3 });
      try {
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
          cursor = next;
          if (keys.length > 0) await redis.del(...keys);
        } while (cursor !== '0');
      } finally {
        redis.disconnect();
      }
    },
  };
}

/** A TCP server speaking just enough RESP to answer every key command with one error. */
export interface BrokenRedis {
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** Commands answered with the error so far. */
  failed(): number;
  close(): Promise<void>;
}

// A cluster node answers commands that name no key itself; only key commands are redirected.
const keylessAnswers: Readonly<Record<string, string>> = {
  PING: '+PONG\r\n',
  CLIENT: '+OK\r\n',
  SELECT: '+OK\r\n',
};

function infoAnswer(): string {
  const text = '# Server\r\nredis_version:7.2.4\r\nredis_mode:cluster\r\n# Memory\r\nmaxmemory_policy:noeviction\r\n';
  return `$${Buffer.byteLength(text)}\r\n${text}\r\n`;
}

/**
 * Starts a "Redis" on a free loopback port that behaves like a cluster node reached by a client
 * that does not follow redirections: `PING`, `INFO`, `CLIENT` and `SELECT` answer as usual, and
 * every other command gets the RESP error `reply` (default `MOVED 1234 127.0.0.1:1`).
 * Connections stay open, so clients never see a disconnect: only failing queue commands.
 */
export async function startBrokenRedis(reply = 'MOVED 1234 127.0.0.1:1'): Promise<BrokenRedis> {
  let count = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        const command = firstCommand(pending);
        if (command === undefined) break;
        pending = pending.subarray(command.length);
        const name = command.name.toUpperCase();
        if (name === 'INFO') socket.write(infoAnswer());
        // As Redis does: the answer, then the server closes the connection.
        else if (name === 'QUIT') socket.end('+OK\r\n');
        else if (keylessAnswers[name] !== undefined) socket.write(keylessAnswers[name]);
        else {
          count += 1;
          socket.write(`-${reply}\r\n`);
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    failed: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The first complete RESP command in `buffer` (array or inline): its name and byte length. */
function firstCommand(buffer: Buffer): { name: string; length: number } | undefined {
  const lineEnd = (from: number) => buffer.indexOf('\r\n', from);
  if (buffer.length === 0) return undefined;
  if (buffer[0] !== 0x2a) {
    const end = lineEnd(0);
    return end < 0 ? undefined : { name: buffer.subarray(0, end).toString('latin1').split(' ')[0] ?? '', length: end + 2 };
  }
  let end = lineEnd(0);
  if (end < 0) return undefined;
  const items = Number(buffer.subarray(1, end).toString('latin1'));
  let at = end + 2;
  let name = '';
  for (let i = 0; i < items; i++) {
    end = lineEnd(at);
    if (end < 0) return undefined;
    const size = Number(buffer.subarray(at + 1, end).toString('latin1'));
    if (end + 2 + size + 2 > buffer.length) return undefined;
    if (i === 0) name = buffer.subarray(end + 2, end + 2 + size).toString('latin1');
    at = end + 2 + size + 2;
  }
  return { name, length: at };
}

/** A `redis-server` of a test's own, on a free loopback port, that the test may stop and start. */
export interface ThrowawayRedis {
  readonly url: string;
  readonly port: number;
  /** Stops the server (SIGTERM, waits for the exit); the port then refuses connections. */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
}

/**
 * Starts `redis-server` without persistence on a free port: for outages a test causes itself,
 * never on the machine's own Redis.
 */
export async function startThrowawayRedis(): Promise<ThrowawayRedis> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  let child: ChildProcess | undefined;
  const start = async () => {
    const started = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    child = started;
    const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {});
    try {
      await waitFor(
        async () => {
          if (started.exitCode !== null) throw new Error(`redis-server exited (${started.exitCode})`);
          try {
            if (client.status !== 'ready') await client.connect();
            return (await client.ping()) === 'PONG';
          } catch {
            client.disconnect();
            return false;
          }
        },
        { timeoutMs: 15_000, what: 'redis-server to answer' },
      );
    } finally {
      client.disconnect();
    }
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      const running = child;
      if (!running || running.exitCode !== null || running.signalCode !== null) return;
      const exited = once(running, 'exit');
      running.kill('SIGTERM');
      await exited;
    },
    start,
  };
}
