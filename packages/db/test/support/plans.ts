import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { poolOptions, type Db } from '../../src/client.ts';
import * as schema from '../../src/schema.ts';

/** What the plan of one statement read from one table, summed over its scans of it. */
export interface TableReads {
  /** Rows the scans produced or removed by a filter: what they had to look at. */
  readonly rows: number;
  /** Times a scan of the table ran (once per outer row, inside a nested loop). */
  readonly loops: number;
}

interface PlanNode {
  readonly 'Relation Name'?: string;
  readonly 'Actual Rows'?: number;
  readonly 'Actual Loops'?: number;
  readonly 'Rows Removed by Filter'?: number;
  readonly Plans?: readonly PlanNode[];
}

/**
 * Runs `read` on a connection that records the statements it sends, then runs the one whose text
 * contains `marker` again, with the same parameters, under `EXPLAIN ANALYZE`, and returns what its
 * plan read per table. A repository function's cost then shows as rows, whatever the machine's
 * speed: a page that sorts a whole table reads all of it. Returns `read`'s value too.
 */
export async function planReads<T>(
  url: string,
  marker: string,
  read: (db: Db) => Promise<T>,
): Promise<{ value: T; reads: Map<string, TableReads> }> {
  const statements: { query: string; parameters: readonly unknown[] }[] = [];
  const client = postgres(url, {
    ...poolOptions({ max: 1 }),
    debug: (_connection, query, parameters) => statements.push({ query, parameters: [...(parameters as unknown[])] }),
  });
  try {
    const value = await read(drizzle(client, { schema }));
    const statement = statements.find((candidate) => candidate.query.includes(marker));
    if (statement === undefined) throw new Error(`no statement containing "${marker}" was sent`);
    const [row] = await client.unsafe<{ 'QUERY PLAN': { Plan: PlanNode }[] }[]>(
      `explain (analyze, format json) ${statement.query}`,
      statement.parameters as postgres.ParameterOrJSON<never>[],
    );
    const plan = row?.['QUERY PLAN'][0]?.Plan;
    if (plan === undefined) throw new Error('EXPLAIN returned no plan');
    const reads = new Map<string, TableReads>();
    const walk = (node: PlanNode): void => {
      const table = node['Relation Name'];
      if (table !== undefined) {
        const loops = node['Actual Loops'] ?? 0;
        const rows = ((node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0)) * loops;
        const before = reads.get(table) ?? { rows: 0, loops: 0 };
        reads.set(table, { rows: before.rows + rows, loops: before.loops + loops });
      }
      for (const child of node.Plans ?? []) walk(child);
    };
    walk(plan);
    return { value, reads };
  } finally {
    await client.end();
  }
}
