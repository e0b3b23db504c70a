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
 * speed: a page that sorts a whole table reads all of it. `plan`: the plan PostgreSQL makes with
 * the parameters' values (custom, the default) or without them (generic). Returns `read`'s value too.
 */
export async function planReads<T>(
  url: string,
  marker: string,
  read: (db: Db) => Promise<T>,
  plan: 'custom' | 'generic' = 'custom',
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
    const parameters = statement.parameters as postgres.ParameterOrJSON<never>[];
    let explained: string;
    if (plan === 'custom') {
      // EXPLAIN plans its statement with the parameters' values, as a custom plan.
      explained = statement.query;
    } else {
      // A prepared statement's plan, forced generic: planned without the values, as PostgreSQL
      // may choose to after a statement's fifth execution.
      await client.unsafe('set plan_cache_mode = force_generic_plan');
      await client.unsafe(`prepare plan_reads as ${statement.query}`);
      const [prepared] = await client<{ types: string[] }[]>`
        select parameter_types::text[] as types from pg_prepared_statements where name = 'plan_reads'`;
      const types = prepared?.types ?? [];
      // EXECUTE takes no parameters of its own statement: the values go in as literals (test data).
      const text = (value: unknown): string =>
        value instanceof Date ? value.toISOString() : typeof value === 'object' ? JSON.stringify(value) : String(value);
      const element = (item: unknown) =>
        item === null || item === undefined ? 'NULL' : `"${text(item).replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
      const literal = (value: unknown) => {
        if (value === null || value === undefined) return 'null';
        const written = Array.isArray(value) ? `{${value.map(element).join(',')}}` : text(value);
        return `'${written.replaceAll("'", "''")}'`;
      };
      const values = parameters.map((value, i) => `${literal(value)}::${types[i] ?? 'text'}`);
      explained = values.length === 0 ? 'execute plan_reads' : `execute plan_reads(${values.join(', ')})`;
    }
    const [row] = await client.unsafe<{ 'QUERY PLAN': { Plan: PlanNode }[] }[]>(`explain (analyze, format json) ${explained}`, plan === 'custom' ? parameters : []);
    const root = row?.['QUERY PLAN'][0]?.Plan;
    if (root === undefined) throw new Error('EXPLAIN returned no plan');
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
    walk(root);
    return { value, reads };
  } finally {
    await client.end();
  }
}
