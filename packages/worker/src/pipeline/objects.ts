import { stampObjects, type StoredObjectState, writeObjects, type ObjectWrite } from '@dirsync/db';
import type { CanonicalObject, MemberRef } from '@dirsync/providers';
import { inParallel, type SyncContext } from './context.ts';
import { decideObject } from './decide.ts';
import { contentHash, stableJson } from './hash.ts';
import type { GroupToSync, MemberSync } from './members.ts';

/** A mapped object with its canonical attribute text and content hash, ready to compare and write. */
export interface PreparedObject extends ObjectWrite {
  /** The group's complete member list, when the source reported one. */
  readonly members: readonly MemberRef[] | undefined;
}

/** One batch of prepared objects, and the ids of entries that failed (kept from the sweep). */
export interface ObjectBatch {
  /** Unique by external id, in fetch order. */
  readonly objects: readonly PreparedObject[];
  readonly failedIds: readonly string[];
}

// jsonb cannot hold U+0000; the JSON text escapes it as \u0000.
const nulEscape = '\\u0000';

/**
 * Serialises and hashes a mapped object (CPU work, done while the previous batch is being
 * written). Returns a reason instead when the object cannot be stored.
 */
export function prepareObject(object: CanonicalObject): PreparedObject | { readonly rejected: string } {
  const attributesJson = stableJson(object.attributes);
  if (attributesJson.includes(nulEscape)) return { rejected: 'attributes contain a NUL character, which cannot be stored' };
  return {
    externalId: object.externalId,
    type: object.type,
    dn: object.dn ?? null,
    attributesJson,
    contentHash: contentHash(object.type, attributesJson),
    members: object.members,
  };
}

/**
 * Object stage for one batch, four statements at most whatever its size (each possibly split
 * across connections): stamp every fetched id with the run while reading the stored hashes,
 * write what is new, changed or back, then the members of the batch's groups (after their
 * members' DNs are stored).
 */
export async function syncObjectBatch(ctx: SyncContext, members: MemberSync, batch: ObjectBatch): Promise<void> {
  const { sql, integrationId, runId, counts } = ctx;
  // Stamping the failed ids protects them too: a full sync's sweep must not delete what the
  // source still has just because one record could not be read.
  const stampIds = batch.failedIds.length === 0 ? batch.objects.map((o) => o.externalId) : [
    ...batch.failedIds,
    ...batch.objects.map((o) => o.externalId),
  ];
  const stored = new Map<string, StoredObjectState>();
  for (const part of await inParallel(ctx, stampIds, (ids) => stampObjects(sql, integrationId, runId, ids))) {
    for (const [id, state] of part) stored.set(id, state);
  }

  const writes: ObjectWrite[] = [];
  for (const object of batch.objects) {
    switch (decideObject(stored.get(object.externalId), object)) {
      case 'create':
        counts.created += 1;
        break;
      case 'update':
        counts.updated += 1;
        break;
      case 'restore':
        counts.restored += 1;
        break;
      case 'unchanged':
        counts.unchanged += 1;
        continue;
    }
    writes.push(object);
  }
  await inParallel(ctx, writes, (part) => writeObjects(sql, integrationId, runId, part));

  const groups: GroupToSync[] = [];
  for (const object of batch.objects) {
    if (object.members === undefined) continue;
    groups.push({
      externalId: object.externalId,
      members: object.members,
      storedMembersHash: stored.get(object.externalId)?.membersHash ?? null,
    });
  }
  await members.syncGroups(groups);
}
