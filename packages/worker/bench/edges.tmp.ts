import postgres from 'postgres';
import { ensureDatabase, migrate } from '@dirsync/db';
const url = 'postgres://postgres@127.0.0.1:5432/dirsync_edges_tmp';
await ensureDatabase(url);
await migrate(url);
const sql = postgres(url, { max: 1, onnotice: () => {} });
await sql`truncate memberships, directory_objects, integrations, accounts cascade`;
const [a] = await sql`insert into accounts (name) values ('x') returning id`;
const [i] = await sql`insert into integrations (account_id, kind, name, settings) values (${a!.id}, 'ldap', 'x', '{}') returning id`;
const iid = i!.id as string;
const run = '00000000-0000-4000-8000-000000000001';
const users = Array.from({ length: 100000 }, (_, k) => `user-${k.toString(36)}-0000-4000-8000-${String(k).padStart(12, '0')}`);
function edges(g0: number, n: number) {
  const gs: string[] = []; const ms: string[] = [];
  for (let g = g0; g < g0 + n; g++) for (let k = 0; k < 100; k++) { gs.push(`group-${g}-0000-4000-8000-000000000000`); ms.push(users[(g * 7919 + k * 104729) % 100000]!); }
  return { gs, ms };
}
async function time(label: string, fn: () => Promise<unknown>) {
  const s = performance.now(); await fn(); console.log(label, (performance.now() - s).toFixed(0), 'ms');
}
const variant = process.argv[2];
for (let b = 0; b < 3; b++) {
  const { gs, ms } = edges(b * 1000, 1000);
  if (variant === 'plain') await time('plain insert', () => sql`insert into memberships (integration_id, group_external_id, member_external_id, last_seen_run_id) select ${iid}, g, m, ${run} from unnest(${sql.array(gs)}::text[], ${sql.array(ms)}::text[]) as d(g, m)`);
  if (variant === 'conflict') await time('on conflict', () => sql`insert into memberships (integration_id, group_external_id, member_external_id, last_seen_run_id) select ${iid}, g, m, ${run} from unnest(${sql.array(gs)}::text[], ${sql.array(ms)}::text[]) as d(g, m) on conflict (integration_id, group_external_id, member_external_id) do update set deleted_at = null where memberships.deleted_at is not null`);
  if (variant === 'sorted') await time('sorted conflict', () => sql`insert into memberships (integration_id, group_external_id, member_external_id, last_seen_run_id) select ${iid}, g, m, ${run} from unnest(${sql.array(gs)}::text[], ${sql.array(ms)}::text[]) as d(g, m) order by g, m on conflict (integration_id, group_external_id, member_external_id) do update set deleted_at = null where memberships.deleted_at is not null`);
  if (variant === 'parse') await time('parse only', () => sql`select count(*) from unnest(${sql.array(gs)}::text[], ${sql.array(ms)}::text[]) as d(g, m)`);
}

if (variant === 'copy') {
  for (let b = 3; b < 6; b++) {
    const { gs, ms } = edges(b * 1000, 1000);
    await time('copy', async () => {
      const stream = await sql`copy memberships (integration_id, group_external_id, member_external_id, last_seen_run_id) from stdin`.writable();
      let chunk = '';
      for (let k = 0; k < gs.length; k++) {
        chunk += `${iid}\t${gs[k]}\t${ms[k]}\t${run}\n`;
        if (chunk.length > 65536) { if (!stream.write(chunk)) await new Promise((r) => stream.once('drain', r)); chunk = ''; }
      }
      stream.write(chunk);
      await new Promise((resolve, reject) => { stream.end(); stream.on('finish', resolve); stream.on('error', reject); });
    });
  }
}

if (variant === 'parallel') {
  const sql2 = postgres(url, { max: 2, onnotice: () => {} });
  for (let b = 6; b < 9; b++) {
    const parts = [edges(b * 2000, 1000), edges(b * 2000 + 1000, 1000)];
    await time('2 parallel x100k', () => Promise.all(parts.map(({ gs, ms }) => sql2`insert into memberships (integration_id, group_external_id, member_external_id, last_seen_run_id) select ${iid}, g, m, ${run} from unnest(${gs}::text[], ${ms}::text[]) as d(g, m) on conflict (integration_id, group_external_id, member_external_id) do update set deleted_at = null where memberships.deleted_at is not null`)));
  }
  await sql2.end();
}
await sql.end();
