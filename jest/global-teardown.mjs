import { dropTestDatabases } from '../packages/testkit/src/pg.ts';

export default async function globalTeardown() {
  await dropTestDatabases();
}
