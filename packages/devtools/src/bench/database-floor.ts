import { once } from 'node:events';
import type { Writable } from 'node:stream';
import postgres from 'postgres';
import { postgresCpuDuring, timed } from './harness.ts';

/** What the database floor wrote and how long it took. */
export interface CopyFloor {
  readonly ms: number;
  /** CPU seconds PostgreSQL used for the writes. */
  readonly postgresCpu: number;
  readonly objects: number;
  readonly edges: number;
  /** Rows of the change feed (one per kind of change and type, one per group's members). */
  readonly changes: number;
  /**
   * The edges alone written again into an emptied table: the faster of one connection and two
   * (the groups split in halves).
   */
  readonly edgesAloneMs: number;
}

async function copyOut(sql: postgres.Sql, query: string): Promise<Buffer[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of await sql.unsafe(query).readable()) chunks.push(chunk as Buffer);
  return chunks;
}

/** A COPY stream that takes no more data for this long has stalled: the floor fails instead of holding the benchmark. */
const copyStallMs = 5 * 60_000;

/**
 * Waits for `event` of a COPY stream, failing if the stream closes first (destroyed: no `drain`
 * or `finish` would ever come) or once it has waited `stallMs`; `describe` says what the stream
 * had taken, for the error.
 */
export async function streamEvent(stream: Writable, event: 'drain' | 'finish', describe: () => string, stallMs = copyStallMs): Promise<void> {
  const stalled = new AbortController();
  const timer = setTimeout(() => stalled.abort(), stallMs);
  try {
    await Promise.race([
      once(stream, event, { signal: stalled.signal }),
      once(stream, 'close', { signal: stalled.signal }).then(() => {
        throw new Error(`${describe()}: the stream closed while waiting for ${event}`);
      }),
    ]);
  } catch (error) {
    if (stalled.signal.aborted) throw new Error(`${describe()}: no ${event} for ${stallMs / 1000} s`);
    throw error;
  } finally {
    clearTimeout(timer);
    stalled.abort();
  }
}

async function copyIn(sql: postgres.Sql, query: string, chunks: readonly Buffer[]): Promise<void> {
  const stream = await sql.unsafe(query).writable();
  let sent = 0;
  let bytes = 0;
  const describe = () => `${query.split(' (')[0] ?? query}: ${sent} chunks sent (${bytes} bytes), ${stream.writableLength} bytes buffered`;
  for (const chunk of chunks) {
    sent += 1;
    bytes += chunk.length;
    if (!stream.write(chunk)) await streamEvent(stream, 'drain', describe);
  }
  stream.end();
  await streamEvent(stream, 'finish', describe);
}

/**
 * The database's floor: every row the first full sync wrote (its objects, its edges and its
 * change feed entries), written again with COPY into empty tables made like the sync's (`like …
 * including all`, foreign keys and triggers added), as the sync wrote into empty ones. The rows are
 * read out first; only the writes are timed, on two connections at once as the sync spreads its
 * writes over two: the edges on one, the objects and then the feed entries on the other. The
 * feed's batch rows (one per transaction, about a hundred) are left out. Then the edges alone,
 * into an emptied table, on one connection and on two ({@link CopyFloor.edgesAloneMs}). The
 * tables are dropped afterwards.
 */
export async function copyFloor(databaseUrl: string, integrationId: string, runId: string): Promise<CopyFloor> {
  const sql = postgres(databaseUrl, { max: 2, onnotice: () => {} });
  // COPY takes no parameters: the ids are uuids this benchmark made, checked before use.
  for (const id of [integrationId, runId]) if (!/^[0-9a-f-]{36}$/.test(id)) throw new Error(`not a uuid: ${id}`);
  const tables = { directory_objects: 'bench_floor_objects', memberships: 'bench_floor_memberships', changes: 'bench_floor_changes' } as const;
  try {
    for (const [source, copy] of Object.entries(tables)) {
      // No autovacuum of the copies: its CPU would count as the writes'.
      await sql.unsafe(
        `drop table if exists ${copy}; create table ${copy} (like ${source} including all) with (autovacuum_enabled = false, toast.autovacuum_enabled = false)`,
      );
      const extras = await sql<{ definition: string }[]>`
        select 'alter table ' || ${copy}::text || ' add ' || pg_get_constraintdef(oid) as definition
        from pg_constraint where conrelid = ${source}::regclass and contype = 'f'
        union all
        select replace(pg_get_triggerdef(oid), ' ON public.' || ${source}::text || ' ', ' ON ' || ${copy}::text || ' ')
        from pg_trigger where tgrelid = ${source}::regclass and not tgisinternal`;
      for (const { definition } of extras) await sql.unsafe(definition);
    }
    const objectColumns = 'integration_id, external_id, type, dn, attributes, content_hash, members_hash, last_seen_run_id';
    const edgeColumns = 'integration_id, group_external_id, member_external_id, last_seen_run_id';
    const liveEdges = `from memberships where integration_id = '${integrationId}' and deleted_at is null`;
    const objects = await copyOut(sql, `copy (select ${objectColumns} from directory_objects where integration_id = '${integrationId}') to stdout`);
    // Read once, in the two halves of groups the two-connection round writes; whole, one after the other.
    const halves = await Promise.all(
      [0, 1].map((half) => copyOut(sql, `copy (select ${edgeColumns} ${liveEdges} and hashtext(group_external_id) & 1 = ${half}) to stdout`)),
    );
    const edges = halves.flat();
    const changes = await copyOut(sql, `copy (select c.* from changes c join change_batches b on b.id = c.batch_id where b.run_id = '${runId}') to stdout`);
    const { value: { ms }, postgres: postgresCpu } = await postgresCpuDuring(databaseUrl, () => timed(() =>
      Promise.all([
        copyIn(sql, `copy ${tables.directory_objects} (${objectColumns}) from stdin`, objects).then(() => copyIn(sql, `copy ${tables.changes} from stdin`, changes)),
        copyIn(sql, `copy ${tables.memberships} (${edgeColumns}) from stdin`, edges),
      ]),
    ));
    const [counts] = await sql.unsafe<{ objects: number; edges: number; changes: number }[]>(
      `select (select count(*) from ${tables.directory_objects})::int as objects, (select count(*) from ${tables.memberships})::int as edges,
        (select count(*) from ${tables.changes})::int as changes`,
    );
    // An empty table again for each, as a first sync finds it.
    const empty = `truncate ${tables.memberships}`;
    await sql.unsafe(empty);
    const { ms: oneConnection } = await timed(() => copyIn(sql, `copy ${tables.memberships} (${edgeColumns}) from stdin`, edges));
    await sql.unsafe(empty);
    const { ms: twoConnections } = await timed(() => Promise.all(halves.map((half) => copyIn(sql, `copy ${tables.memberships} (${edgeColumns}) from stdin`, half))));
    return {
      ms,
      postgresCpu,
      objects: counts?.objects ?? 0,
      edges: counts?.edges ?? 0,
      changes: counts?.changes ?? 0,
      edgesAloneMs: Math.min(oneConnection, twoConnections),
    };
  } finally {
    await sql.unsafe(`drop table if exists ${Object.values(tables).join(', ')}`).catch(() => undefined);
    await sql.end({ timeout: 5 });
  }
}
