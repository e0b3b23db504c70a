import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Db } from '../src/client.ts';
import { useTestDatabase } from './support/database.ts';

// postgres.js keeps, for the life of the process, an Error made at the first run of each tagged
// statement (to tell where a failed query was issued). An Error whose stack was never read holds
// the receivers and closures of its frames: without the patch (patches/postgres@3.4.9.patch), the
// object that first ran a statement stayed reachable for ever. In the worker that object was a
// whole sync's pipeline, with a DN cache of up to 150,000 entries.

setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

let db: Db;
useTestDatabase('statement_origin', 2, (handle) => {
  db = handle;
});

/** Runs a statement seen for the first time from a method of an object only a WeakRef keeps. */
async function firstRunFromHolder(): Promise<WeakRef<object>> {
  const holder = {
    payload: new Array<string>(10_000).fill('entry'),
    async count(sql: Db['$client']): Promise<number> {
      const [row] = await sql<{ n: number }[]>`select ${this.payload.length}::int as n`;
      return row?.n ?? -1;
    },
  };
  expect(await holder.count(db.$client)).toBe(10_000);
  return new WeakRef(holder);
}

test('the object that first ran a statement is collected once nothing else holds it', async () => {
  const ref = await firstRunFromHolder();
  // A WeakRef's target stays alive until the current job ends: collect from the next one.
  await new Promise<void>((resolve) => setImmediate(resolve));
  collectGarbage();
  expect(ref.deref()).toBeUndefined();
});
