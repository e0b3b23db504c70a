import { dropTestDatabases } from '../packages/testkit/src/pg.ts';
import { stopRunSamba } from './samba.mjs';

export default async function globalTeardown() {
  await stopRunSamba();
  await dropTestDatabases();
}
