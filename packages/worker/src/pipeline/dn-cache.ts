/**
 * DN → external id of the objects the current run has written, so that member references resolve
 * in memory instead of one index lookup per reference (500,000 lookups were a quarter of a first
 * sync's database time). It holds only objects seen by this run, which are exactly the ones the
 * database's resolution prefers (see `resolveDns`), so a hit gives the answer the database would
 * give; a miss falls back to the database. An object the run finds unchanged is not added (see
 * {@link DnCache.refresh}): a full sync that changes little would otherwise hold every DN of the
 * directory for the few groups that changed.
 *
 * Bounded: entries live in two generations of `capacity / 2`; when the young one is full it
 * becomes the old one and the previous old one is dropped whole. Memory stays flat whatever the
 * directory's size (a large directory then resolves more in the database), and every operation
 * is constant time (evicting one entry at a time from a Map's front costs a scan over the holes
 * earlier deletions left, which made a million-object sync spend minutes here).
 */
export class DnCache {
  readonly #generation: number;
  #young = new Map<string, string>();
  #old = new Map<string, string>();
  #version = 0;

  constructor(capacity: number) {
    this.#generation = Math.max(0, Math.floor(capacity / 2));
  }

  get size(): number {
    return this.#young.size + this.#old.size;
  }

  /**
   * Changes whenever a DN the cache held stops naming the object it named (renamed away, or taken
   * over by another object), and when a generation is dropped (its DNs may then change owner
   * without the cache seeing it): an answer read at an earlier version may be wrong. New DNs
   * leave it as it is (a hit read before them is still true).
   */
  get version(): number {
    return this.#version;
  }

  get(dn: string): string | undefined {
    // A DN is in one generation at most (`set` takes it out of the old one), so either may be
    // asked first: the larger one, which a random DN more likely hits, saves a second lookup in
    // a map too large for the CPU's caches.
    const young = this.#young;
    const old = this.#old;
    if (old.size > young.size) return old.get(dn) ?? young.get(dn);
    return young.get(dn) ?? old.get(dn);
  }

  /** Records that `dn` now names `externalId` (the latest object stored with a DN wins). */
  set(dn: string, externalId: string): void {
    if (this.#generation === 0) return;
    const held = this.#young.get(dn) ?? this.#old.get(dn);
    if (held !== undefined && held !== externalId) this.#version += 1;
    this.#old.delete(dn);
    this.#young.set(dn, externalId);
    if (this.#young.size >= this.#generation) {
      // DNs dropped with the old generation can change owner unseen (a set or a forget of a DN
      // the cache no longer holds moves nothing): an answer read before the drop is not kept.
      if (this.#old.size > 0) this.#version += 1;
      this.#old = this.#young;
      this.#young = new Map();
    }
  }

  /**
   * Records that `dn` now names `externalId` where the cache holds `dn` already, naming another
   * object (the latest object stored with a DN wins); adds nothing. For objects found unchanged:
   * a DN the cache does not hold is resolved by the database, which gives the same answer.
   */
  refresh(dn: string, externalId: string): void {
    const held = this.#young.get(dn) ?? this.#old.get(dn);
    if (held !== undefined && held !== externalId) this.set(dn, externalId);
  }

  /** Forgets `dn` if it still names `externalId` (the object was renamed away from it). */
  forget(dn: string, externalId: string): void {
    const young = this.#young.get(dn) === externalId && this.#young.delete(dn);
    const old = this.#old.get(dn) === externalId && this.#old.delete(dn);
    if (young || old) this.#version += 1;
  }
}
