import { hash } from 'node:crypto';
import type { JsonValue, MemberRef, ObjectType } from '@dirsync/providers';

/**
 * Canonical JSON: object keys sorted at every level, array order kept, `undefined` members
 * dropped. Two objects with the same content give the same text whatever order a provider built
 * them in, so the text is both what is hashed and what is stored.
 */
export function stableJson(value: JsonValue | undefined): string {
  // The native JSON.stringify over the value itself when its keys are in order already (mappers
  // build attributes that way), over a key-sorted copy otherwise: twice as fast as assembling the
  // text, and the result is one flat string instead of a tree of concatenations that a batch
  // would keep alive (and the young generation would promote) until the batch is written.
  try {
    return JSON.stringify(canonical(value ?? null));
  } catch (error) {
    if (error !== indexKeyFound) throw error;
    return assembledJson(value);
  }
}

// Engines enumerate array-index keys ("0", "42") first in numeric order whatever the insertion
// order, so an object cannot hold them in sorted place; such objects take the slower path.
const indexKeyFound = new Error('array-index key');
const indexKey = /^(?:0|[1-9][0-9]*)$/;

/** `value` itself when its object keys are sorted at every level, else a key-sorted copy. */
function canonical(value: JsonValue): JsonValue {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    let out: JsonValue[] | undefined;
    for (let i = 0; i < value.length; i += 1) {
      const member = value[i] ?? null;
      const copy = canonical(member);
      if (copy !== member && out === undefined) out = value.slice(0, i);
      out?.push(copy);
    }
    return out ?? value;
  }
  const keys = Object.keys(value);
  let sorted = true;
  let changed = false;
  const members = new Array<JsonValue | undefined>(keys.length);
  for (let i = 0; i < keys.length; i += 1) {
    const key = keys[i] as string;
    const first = key.charCodeAt(0);
    if (first >= 48 && first <= 57 && indexKey.test(key)) throw indexKeyFound;
    if (i > 0 && (keys[i - 1] as string) > key) sorted = false;
    const member = value[key];
    const copy = member === undefined ? undefined : canonical(member);
    if (copy !== member) changed = true;
    members[i] = copy;
  }
  if (sorted && !changed) return value;
  const order = keys.map((_, i) => i);
  if (!sorted) order.sort((a, b) => ((keys[a] as string) < (keys[b] as string) ? -1 : 1));
  const out: { [key: string]: JsonValue } = {};
  for (const i of order) {
    const member = members[i];
    if (member !== undefined) out[keys[i] as string] = member;
  }
  return out;
}

function assembledJson(value: JsonValue | undefined): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i += 1) {
      if (i > 0) out += ',';
      out += assembledJson(value[i]);
    }
    return `${out}]`;
  }
  const keys = Object.keys(value).sort();
  let out = '{';
  let first = true;
  for (const key of keys) {
    const member = value[key];
    if (member === undefined) continue;
    if (!first) out += ',';
    first = false;
    out += `${JSON.stringify(key)}:${assembledJson(member)}`;
  }
  return `${out}}`;
}

// SHA-1 only detects change here (an adversary gains nothing from a collision: the source already
// decides the content), and the one-shot `crypto.hash` avoids a Hash object per call.
function digest(text: string): string {
  return hash('sha1', text, 'base64url');
}

/** Content hash of an object: its type and canonical attributes (`attributesJson` from {@link stableJson}). */
export function contentHash(type: ObjectType, attributesJson: string): string {
  return digest(`${type}\n${attributesJson}`);
}

/**
 * Content hash of an object whose attributes the database rewrote in place (a manager cleared or
 * given back): the hash a read of the same content from the source gives.
 */
export function contentHashOf(type: string, attributes: Record<string, unknown>): string {
  return contentHash(type as ObjectType, stableJson(attributes as JsonValue));
}

/**
 * Hash of a group's member references as the source listed them (before DN resolution),
 * independent of order and duplicates. An equal hash means the source's member list did not
 * change, which lets the pipeline skip resolving it (see members.ts for when that is safe).
 */
export function memberRefsHash(refs: readonly MemberRef[]): string {
  // Two plain string arrays sort faster than concatenated keys or a comparator over objects.
  const dns: string[] = [];
  const ids: string[] = [];
  for (const ref of refs) (ref.by === 'dn' ? dns : ids).push(ref.value);
  // JSON keeps the encoding unambiguous whatever characters a reference holds.
  return digest(`refs\n${JSON.stringify([uniqueSorted(dns), uniqueSorted(ids)])}`);
}

function uniqueSorted(values: string[]): string[] {
  values.sort();
  let kept = 0;
  for (let i = 0; i < values.length; i += 1) {
    const value = values[i] as string;
    if (kept === 0 || values[kept - 1] !== value) values[kept++] = value;
  }
  values.length = kept;
  return values;
}
