import type postgres from 'postgres';
import { usePartlyMigratedDatabase } from './support/migrations.ts';

// Migration 0005 gives every consent an account. Consents made before it are attributed through
// the integrations that use them; this applies the migrations up to 0004 to an empty database,
// stores consents as they were then, and applies 0005.

let sql: postgres.Sql;
let migrateRest: () => Promise<void>;
usePartlyMigratedDatabase('mig0005', 5, (database) => {
  sql = database.sql;
  migrateRest = database.migrateRest;
});

it('attributes each old consent to the one account using it, and asks again where several did', async () => {
  const [a] = await sql<{ id: string }[]>`insert into accounts (name) values ('contoso') returning id`;
  const [b] = await sql<{ id: string }[]>`insert into accounts (name) values ('fabrikam') returning id`;
  const [connector] = await sql<{ id: string }[]>`
    insert into connectors (name, description, client_id, application_object_id, home_tenant_id, redirect_uri)
    values ('sync', 'directory sync', 'c1', 'o1', 'h1', 'https://dirsync.example/v1/consent/callback') returning id`;
  if (!a || !b || !connector) throw new Error('insert returned no row');
  const entra = (account: string, integrationName: string, tenant: string) =>
    sql`insert into integrations (account_id, kind, name, settings)
        values (${account}, 'entra_id', ${integrationName}, ${sql.json({ tenantId: tenant, connectorId: connector.id })})`;
  await entra(a.id, 'own tenant', 'own.onmicrosoft.com');
  await entra(a.id, 'shared tenant', 'shared.onmicrosoft.com');
  await entra(b.id, 'shared tenant', 'SHARED.onmicrosoft.com');
  await sql`insert into entra_consents (connector_id, tenant_id, tenant_guid, status, granted_at) values
    (${connector.id}, 'own.onmicrosoft.com', '11111111-1111-4111-8111-111111111111', 'granted', now()),
    (${connector.id}, 'shared.onmicrosoft.com', null, 'granted', now()),
    (${connector.id}, 'unused.onmicrosoft.com', null, 'granted', now())`;
  await sql`insert into entra_consent_states (nonce, connector_id, tenant_id, expires_at) values ('n1', ${connector.id}, 'own.onmicrosoft.com', now() + interval '1 hour')`;

  await migrateRest();

  const rows = await sql<{ account_id: string; tenant_id: string; tenant_guid: string | null; status: string; error: string | null }[]>`
    select account_id, tenant_id, tenant_guid, status, error from entra_consents order by tenant_id, account_id`;
  const byAccount = (account: string, tenant: string) => rows.find((r) => r.account_id === account && r.tenant_id === tenant);
  expect(byAccount(a.id, 'own.onmicrosoft.com')).toMatchObject({ status: 'granted', tenant_guid: '11111111-1111-4111-8111-111111111111' });
  expect(byAccount(a.id, 'shared.onmicrosoft.com')).toMatchObject({ status: 'pending', error: 'consent_owner_unknown' });
  expect(byAccount(b.id, 'shared.onmicrosoft.com')).toMatchObject({ status: 'pending', error: 'consent_owner_unknown' });
  expect(rows).toHaveLength(3);
  expect(await sql`select 1 from entra_consent_states`).toHaveLength(0);
  // The new key: one consent per account, connector and tenant.
  await expect(sql`insert into entra_consents (account_id, connector_id, tenant_id, status) values (${a.id}, ${connector.id}, 'own.onmicrosoft.com', 'pending')`).rejects.toThrow(
    /entra_consents_pk/,
  );
});
