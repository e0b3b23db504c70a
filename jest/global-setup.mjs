// Runs once per jest run, before any test file: checks that Postgres and Redis answer and
// prepares this run's migrated template database, which every test file clones. Node 24 loads
// the .ts sources directly.
import net from 'node:net';
import postgres from 'postgres';
import { migrate } from '../packages/db/src/client.ts';
import { dropTestDatabases, templateDatabase, testPgServerUrl } from '../packages/testkit/src/pg.ts';
import { testCompileCache } from '../packages/testkit/src/child-env.ts';
import { startRunSamba } from './samba.mjs';

function reachable(host, port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: 2000 });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => { socket.destroy(); resolve(false); });
  });
}

export default async function globalSetup(globalConfig) {
  // Provisioning Samba takes seconds: it overlaps with the database preparation below.
  const samba = startRunSamba(globalConfig);
  samba.catch(() => {});
  const pg = new URL(testPgServerUrl);
  if (!(await reachable(pg.hostname, Number(pg.port || 5432)))) {
    throw new Error(`PostgreSQL does not answer at ${pg.host}: run the tests with \`npm test\`, which starts it`);
  }
  if (!(await reachable('127.0.0.1', 6379))) {
    throw new Error('Redis does not answer at 127.0.0.1:6379: run the tests with `npm test`, which starts it');
  }
  // Test workers inherit this, so every file of the run clones this run's template.
  process.env.DIRSYNC_TEST_RUN = `p${process.pid}`;
  // And Node's compile cache (keyed by file content, so edited sources are compiled again): jest's
  // workers and every process they start with the inherited environment (worker children, tsc,
  // the demo's services) start about a third faster. The CLI and console harnesses, which build
  // their children's environment from scratch, name the same directory.
  process.env.NODE_COMPILE_CACHE ??= testCompileCache;
  await dropTestDatabases();
  const admin = postgres(`${testPgServerUrl}/postgres`, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${templateDatabase()}"`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  await migrate(`${testPgServerUrl}/${templateDatabase()}`);
  await samba;
}
