import { spawn, spawnSync } from 'node:child_process';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { waitFor } from './wait.ts';

/** A Redis Cluster of three primaries on loopback, shared by every test file on the machine. */
export interface TestRedisCluster {
  /** Ports of the three nodes. */
  readonly ports: readonly number[];
  /** `redis://127.0.0.1:<port>` of each node. */
  readonly urls: readonly string[];
  /** The node serving `slot` (as the cluster reports it now). */
  ownerOf(slot: number): Promise<number>;
  /** The URL of a node that does not serve `slot`: a seed through which every command is redirected. */
  nonOwnerUrl(slot: number): Promise<string>;
  /** Deletes every key starting with `prefix` on every node (a test file's cleanup). */
  deleteKeys(prefix: string): Promise<void>;
}

interface ClusterState {
  readonly ports: number[];
  readonly pids: number[];
  readonly dir: string;
}

// One directory per user: the cluster outlives the test file that started it, and the next file
// (or run) finds it through the state file here.
const home = join(tmpdir(), `dirsync-redis-cluster-${process.getuid?.() ?? 'user'}`);
const stateFile = join(home, 'state.json');
const lockFile = join(home, 'lock');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

// A cluster node also listens on port + 10000 (the cluster bus): both must be free.
async function freeNodePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let port = 17_100 + (process.pid % 200) * 10; ports.length < count && port < 30_000; port++) {
    if ((await portFree(port)) && (await portFree(port + 10_000))) ports.push(port);
  }
  if (ports.length < count) throw new Error('no free ports for the test Redis Cluster');
  return ports;
}

async function clusterInfo(port: number): Promise<string> {
  const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    return String(await client.call('CLUSTER', 'INFO'));
  } catch {
    return '';
  } finally {
    client.disconnect();
  }
}

async function healthy(state: ClusterState): Promise<boolean> {
  if (!state.pids.every(alive)) return false;
  const infos = await Promise.all(state.ports.map(clusterInfo));
  return infos.every((info) => info.includes('cluster_state:ok') && info.includes('cluster_known_nodes:3'));
}

async function readState(): Promise<ClusterState | undefined> {
  try {
    return JSON.parse(await readFile(stateFile, 'utf8')) as ClusterState;
  } catch {
    return undefined;
  }
}

// The lock holder's pid is in the file: a lock left by a killed process is taken over.
async function withLock<T>(work: () => Promise<T>): Promise<T> {
  await mkdir(home, { recursive: true });
  await waitFor(
    async () => {
      try {
        const handle = await open(lockFile, 'wx');
        await handle.writeFile(String(process.pid));
        await handle.close();
        return true;
      } catch {
        const holder = Number((await readFile(lockFile, 'utf8').catch(() => '')).trim());
        if (!Number.isInteger(holder) || holder <= 0 || !alive(holder)) await rm(lockFile, { force: true });
        return false;
      }
    },
    { timeoutMs: 60_000, intervalMs: 50, what: 'the test Redis Cluster lock' },
  );
  try {
    return await work();
  } finally {
    await rm(lockFile, { force: true });
  }
}

async function startCluster(): Promise<ClusterState> {
  const old = await readState();
  if (old) for (const pid of old.pids) if (alive(pid)) process.kill(pid, 'SIGTERM');
  const ports = await freeNodePorts(3);
  const dir = join(home, `nodes-${Date.now()}`);
  const pids: number[] = [];
  for (const port of ports) {
    const nodeDir = join(dir, String(port));
    await mkdir(nodeDir, { recursive: true });
    // Detached: the nodes serve later test files after this one's process is gone.
    const child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', join(nodeDir, 'nodes.conf'), '--dir', nodeDir, '--save', '', '--appendonly', 'no', '--cluster-node-timeout', '5000'],
      { stdio: 'ignore', detached: true },
    );
    child.unref();
    if (child.pid === undefined) throw new Error('redis-server did not start (is it installed? scripts/bootstrap.sh installs it)');
    pids.push(child.pid);
  }
  await waitFor(async () => (await Promise.all(ports.map(clusterInfo))).every((info) => info.includes('cluster_state')), {
    timeoutMs: 15_000,
    what: 'the cluster nodes to answer',
  });
  const created = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((port) => `127.0.0.1:${port}`), '--cluster-replicas', '0', '--cluster-yes'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
  const state = { ports, pids, dir };
  await waitFor(() => healthy(state), { timeoutMs: 30_000, intervalMs: 100, what: 'the test Redis Cluster to be ok' });
  await writeFile(stateFile, JSON.stringify(state));
  return state;
}

let shared: Promise<TestRedisCluster> | undefined;

/**
 * The test Redis Cluster: three `redis-server --cluster-enabled yes` primaries joined by
 * `redis-cli --cluster create … --cluster-replicas 0`, started on first use and reused by every
 * later test file and run while it stays healthy. Tests keep apart by their key prefixes.
 */
export function useTestRedisCluster(): Promise<TestRedisCluster> {
  shared ??= withLock(async () => {
    const existing = await readState();
    const state = existing !== undefined && (await healthy(existing)) ? existing : await startCluster();
    return describe(state);
  });
  return shared;
}

/**
 * Stops the test Redis Cluster if one runs (its nodes' pids are in the state file) and removes
 * its files. Test runs leave it running for the next one; call this to free the ports.
 */
export async function stopTestRedisCluster(): Promise<void> {
  await withLock(async () => {
    const state = await readState();
    if (state) for (const pid of state.pids) if (alive(pid)) process.kill(pid, 'SIGTERM');
    await rm(stateFile, { force: true });
    if (state) await rm(state.dir, { recursive: true, force: true });
  });
  shared = undefined;
}

function describe(state: ClusterState): TestRedisCluster {
  const urls = state.ports.map((port) => `redis://127.0.0.1:${port}`);
  async function ownerOf(slot: number): Promise<number> {
    const client = new Redis(state.ports[0] as number, '127.0.0.1', { maxRetriesPerRequest: 1 });
    client.on('error', () => {});
    try {
      const ranges = (await client.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, ...unknown[]], ...unknown[]][];
      const range = ranges.find(([from, to]) => slot >= from && slot <= to);
      if (!range) throw new Error(`no node serves slot ${slot}`);
      return range[2][1];
    } finally {
      client.disconnect();
    }
  }
  return {
    ports: state.ports,
    urls,
    ownerOf,
    async nonOwnerUrl(slot) {
      const owner = await ownerOf(slot);
      const port = state.ports.find((candidate) => candidate !== owner) as number;
      return `redis://127.0.0.1:${port}`;
    },
    async deleteKeys(prefix) {
      for (const port of state.ports) {
        const client = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 3 });
        client.on('error', () => {});
        try {
          let cursor = '0';
          do {
            const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
            cursor = next;
            // One key per command: the keys of one node may still hash to different slots.
            for (const key of keys) await client.del(key);
          } while (cursor !== '0');
        } finally {
          client.disconnect();
        }
      }
    },
  };
}
