import type { EmulatedTenantDirectory } from './entra/directory.ts';

/** An object as a faithful copy of the tenant must hold it. */
export interface ExpectedObject {
  readonly externalId: string;
  readonly type: 'user' | 'group';
  readonly attributes: Record<string, unknown>;
}

/** What a faithful copy of an emulated tenant holds: live users and groups, and user/group member edges. */
export interface ExpectedTenantContents {
  readonly objects: readonly ExpectedObject[];
  readonly edges: readonly (readonly [string, string])[];
}

/**
 * The copy a sync must end with, read from the emulator's own state (not from anything the
 * client saw): every live user and group with its set properties — nulls, empty strings and
 * empty lists are "not set", lists compare as sorted — and every present edge to a user or group
 * member (devices are not synced).
 */
export function expectedTenantContents(directory: EmulatedTenantDirectory): ExpectedTenantContents {
  const objects: ExpectedObject[] = [];
  for (const [id, state] of directory.users) objects.push({ externalId: id.toLowerCase(), type: 'user', attributes: setProperties(state.data) });
  for (const [id, state] of directory.groups) objects.push({ externalId: id.toLowerCase(), type: 'group', attributes: setProperties(state.data) });
  objects.sort((a, b) => compareText(a.externalId, b.externalId));
  const edges: [string, string][] = [];
  for (const [groupId, state] of directory.groups) {
    for (const [memberId, edge] of state.edges) {
      if (edge.present && edge.kind !== 'device') edges.push([groupId.toLowerCase(), memberId.toLowerCase()]);
    }
  }
  edges.sort((a, b) => compareText(a[0], b[0]) || compareText(a[1], b[1]));
  return { objects, edges };
}

function setProperties(data: object): Record<string, unknown> {
  const attributes: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(data)) {
    if (name === 'id' || value === null || value === undefined || value === '') continue;
    if (Array.isArray(value)) {
      if (value.length > 0) attributes[name] = [...(value as string[])].sort();
      continue;
    }
    attributes[name] = value;
  }
  return attributes;
}

// Byte order, as PostgreSQL's `collate "C"` sorts.
function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A synced copy as stored (see `readIntegrationContents` in the db package). */
export interface ActualContents {
  readonly objects: readonly { readonly externalId: string; readonly type: string; readonly attributes: Record<string, unknown> }[];
  readonly edges: readonly (readonly [string, string])[];
}

/**
 * Differences between what a copy should hold and what it holds, in words (at most `limit`),
 * with the counts of each kind of difference first; empty when the copy is exact.
 */
export function diffTenantContents(expected: ExpectedTenantContents, actual: ActualContents, limit = 20): string[] {
  const found: string[] = [];
  const counts = { missing: 0, extra: 0, different: 0, missingEdges: 0, extraEdges: 0 };
  const stored = new Map(actual.objects.map((o) => [o.externalId, o]));
  const wanted = new Set<string>();
  for (const object of expected.objects) {
    wanted.add(object.externalId);
    const copy = stored.get(object.externalId);
    if (!copy) {
      counts.missing += 1;
      found.push(`missing ${object.type} ${object.externalId}`);
      continue;
    }
    const want = canonical({ type: object.type, attributes: object.attributes });
    const have = canonical({ type: copy.type, attributes: copy.attributes });
    if (want !== have) {
      counts.different += 1;
      found.push(`${object.type} ${object.externalId} differs: expected ${want}, stored ${have}`);
    }
  }
  for (const object of actual.objects) {
    if (!wanted.has(object.externalId)) {
      counts.extra += 1;
      found.push(`extra ${object.type} ${object.externalId}`);
    }
  }
  const key = (edge: readonly [string, string]) => `${edge[0]} ${edge[1]}`;
  const storedEdges = new Set(actual.edges.map(key));
  const wantedEdges = new Set(expected.edges.map(key));
  for (const edge of wantedEdges) {
    if (!storedEdges.has(edge)) {
      counts.missingEdges += 1;
      found.push(`missing edge ${edge}`);
    }
  }
  for (const edge of storedEdges) {
    if (!wantedEdges.has(edge)) {
      counts.extraEdges += 1;
      found.push(`extra edge ${edge}`);
    }
  }
  if (found.length === 0) return [];
  const summary = Object.entries(counts).filter(([, n]) => n > 0).map(([what, n]) => `${n} ${what}`).join(', ');
  return [summary, ...found.slice(0, limit)];
}

/** JSON with keys sorted at every level, so equal values print equally. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => compareText(a, b))) : v,
  );
}
