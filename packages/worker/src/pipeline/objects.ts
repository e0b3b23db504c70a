import { stampObjects, type StoredObjectState, writeObjects, type ObjectWrite } from '@dirsync/db';
import type { CanonicalObject } from '@dirsync/providers';
import { inParallel, type SyncContext } from './context.ts';
import { decideObject } from './decide.ts';
import { contentHash, stableJson } from './hash.ts';
import type { GroupToSync, MemberSync } from './members.ts';

/** One batch of mapped objects, and the ids of entries that failed to map (kept from the sweep). */
export interface ObjectBatch {
  /** Unique by external id, in fetch order. */
  readonly objects: readonly CanonicalObject[];
  readonly failedIds: readonly string[];
}

// jsonb cannot hold U+0000; the JSON text escapes it as \u0000.
const nulEscape = '\\u0000';

/**
 * Object stage for one batch, four statements at most whatever its size: stamp every fetched id
 * with the run while reading the stored hashes, write what is new, changed or back, then the
 * members of the batch's groups (after their members' DNs are stored).
 */
export async function syncObjectBatch(ctx: SyncContext, members: MemberSync, batch: ObjectBatch): Promise<void> {
  const { sql, integrationId, runId, counts, issues } = ctx;
  const prepared: ObjectWrite[] = [];
  const stampIds: string[] = [...batch.failedIds];
  const rejected = new Set<string>();
  for (const object of batch.objects) {
    const attributesJson = stableJson(object.attributes);
    stampIds.push(object.externalId);
    if (attributesJson.includes(nulEscape)) {
      counts.failed += 1;
      rejected.add(object.externalId);
      issues.add({
        externalId: object.externalId,
        ...(object.dn === undefined ? {} : { dn: object.dn }),
        reason: 'attributes contain a NUL character, which cannot be stored',
      });
      continue;
    }
    prepared.push({
      externalId: object.externalId,
      type: object.type,
      dn: object.dn ?? null,
      attributesJson,
      contentHash: contentHash(object.type, attributesJson),
    });
  }

  // Stamping here also protects objects whose entry failed to map: a full sync's sweep must not
  // delete what the source still has just because one record could not be read.
  const stored = new Map<string, StoredObjectState>();
  for (const part of await inParallel(ctx, stampIds, (ids) => stampObjects(sql, integrationId, runId, ids))) {
    for (const [id, state] of part) stored.set(id, state);
  }

  const writes: ObjectWrite[] = [];
  for (const object of prepared) {
    const decision = decideObject(stored.get(object.externalId), object);
    switch (decision) {
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
    if (object.members === undefined || rejected.has(object.externalId)) continue;
    groups.push({
      externalId: object.externalId,
      members: object.members,
      storedMembersHash: stored.get(object.externalId)?.membersHash ?? null,
    });
  }
  await members.syncGroups(groups);
}
