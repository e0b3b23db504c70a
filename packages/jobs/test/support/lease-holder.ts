// A process that joins a leader election and then only waits, for tests that kill it: its lease
// must outlive it by at most the TTL. Argument: JSON { redisUrl, key, ttlMs, renewEveryMs }.
import { startLeaderElection } from '../../src/leader-lease.ts';

const { redisUrl, key, ttlMs, renewEveryMs } = JSON.parse(process.argv[2] ?? '{}') as { redisUrl: string; key: string; ttlMs: number; renewEveryMs: number };
const election = startLeaderElection({ connection: redisUrl, key, timing: { ttlMs, renewEveryMs } });
await election.settled;
process.stdout.write(`${election.state().status}\n`);
// The election's timers are unref'd: this one keeps the process (and so its renewals) alive.
setInterval(() => {}, 60_000);
