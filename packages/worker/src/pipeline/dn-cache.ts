/**
 * DN → external id of the objects the current run has stored, so that member references resolve
 * in memory instead of one index lookup per reference (500,000 lookups were a quarter of a first
 * sync's database time). It holds only objects seen and written by this run, which are exactly
 * the ones the database's resolution prefers (see `resolveDns`), so a hit gives the answer the
 * database would give; a miss falls back to the database.
 *
 * Bounded: past `capacity` entries the oldest are dropped (insertion order), so memory stays
 * flat whatever the directory's size; a large directory then resolves more in the database.
 */
export class DnCache {
  readonly #capacity: number;
  readonly #ids = new Map<string, string>();

  constructor(capacity: number) {
    this.#capacity = Math.max(0, capacity);
  }

  get size(): number {
    return this.#ids.size;
  }

  get(dn: string): string | undefined {
    return this.#ids.get(dn);
  }

  /** Records that `dn` now names `externalId` (the latest object stored with a DN wins). */
  set(dn: string, externalId: string): void {
    if (this.#capacity === 0) return;
    // Re-inserted, so a refreshed entry counts as the newest.
    this.#ids.delete(dn);
    if (this.#ids.size >= this.#capacity) {
      const oldest = this.#ids.keys().next();
      if (oldest.done !== true) this.#ids.delete(oldest.value);
    }
    this.#ids.set(dn, externalId);
  }

  /** Forgets `dn` if it still names `externalId` (the object was renamed away from it). */
  forget(dn: string, externalId: string): void {
    if (this.#ids.get(dn) === externalId) this.#ids.delete(dn);
  }
}
