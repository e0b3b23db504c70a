import type { Db } from './client.ts';

/** A live object of an integration as stored: what a comparison with the source needs. */
export interface StoredContentObject {
  readonly externalId: string;
  readonly type: string;
  readonly attributes: Record<string, unknown>;
}

/** Everything live an integration holds, in a stable order. */
export interface IntegrationContents {
  /** Sorted by external id. */
  readonly objects: readonly StoredContentObject[];
  /** Live membership edges as `[group external id, member external id]`, sorted. */
  readonly edges: readonly (readonly [string, string])[];
}

/**
 * Reads every live object and membership edge of an integration, for comparing the synced copy
 * with its source (demo and tests). Whole-integration read: not for the sync path.
 */
export async function readIntegrationContents(db: Db, integrationId: string): Promise<IntegrationContents> {
  const objects = await db.$client<{ external_id: string; type: string; attributes: Record<string, unknown> }[]>`
    select external_id, type, attributes from directory_objects
    where integration_id = ${integrationId} and deleted_at is null
    order by external_id collate "C"`;
  const edges = await db.$client<{ group_external_id: string; member_external_id: string }[]>`
    select group_external_id, member_external_id from memberships
    where integration_id = ${integrationId} and deleted_at is null
    order by group_external_id collate "C", member_external_id collate "C"`;
  return {
    objects: objects.map((o) => ({ externalId: o.external_id, type: o.type, attributes: o.attributes })),
    edges: edges.map((e) => [e.group_external_id, e.member_external_id] as const),
  };
}
