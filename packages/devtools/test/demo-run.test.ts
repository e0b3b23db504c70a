import postgres from 'postgres';
import { testPgServerUrl, testRedisUrl } from '@dirsync/testkit';
import { planDemoRun } from '../src/commands/demo-run.ts';
import { loadConfig } from '@dirsync/cli';

// A demo run drops what it made when it ends; a database that already had its name is someone
// else's (however unlikely with a random name) and must survive the run.

const config = loadConfig({ DATABASE_URL: `${testPgServerUrl}/postgres`, REDIS_URL: testRedisUrl });

async function databaseExists(name: string): Promise<boolean> {
  const sql = postgres(`${testPgServerUrl}/postgres`, { max: 1, onnotice: () => {} });
  try {
    return (await sql`select 1 from pg_database where datname = ${name}`).length === 1;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function admin(statement: string): Promise<void> {
  const sql = postgres(`${testPgServerUrl}/postgres`, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(statement);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

test('a run makes its own database and drops it at the end', async () => {
  const run = planDemoRun(config);
  await run.create();
  expect(await databaseExists(run.databaseName)).toBe(true);
  await run.drop();
  expect(await databaseExists(run.databaseName)).toBe(false);
}, 60_000);

test('a run whose database name is taken refuses it and leaves it in place', async () => {
  const run = planDemoRun(config);
  await admin(`create database "${run.databaseName}"`);
  try {
    await expect(run.create()).rejects.toThrow(`database ${run.databaseName} already exists: it is not this demo run's, so the demo neither uses nor drops it`);
    await run.drop();
    expect(await databaseExists(run.databaseName)).toBe(true);
  } finally {
    await admin(`drop database if exists "${run.databaseName}" with (force)`);
  }
}, 60_000);
