/**
 * Iterates `source` one item ahead: as soon as an item is handed out, the next one is already
 * being fetched, so a provider's network wait overlaps the caller's database writes. At most two
 * items are held at once, so memory stays bounded.
 */
export async function* readAhead<T>(source: AsyncIterable<T>): AsyncGenerator<T, void, undefined> {
  const iterator = source[Symbol.asyncIterator]();
  let done = false;
  let pending = iterator.next();
  try {
    for (;;) {
      const result = await pending;
      if (result.done === true) {
        done = true;
        return;
      }
      pending = iterator.next();
      // Handled when awaited on the next turn; this only keeps an early failure from being
      // reported as unhandled while the caller is still busy with the current item.
      pending.catch(() => undefined);
      yield result.value;
    }
  } catch (error) {
    done = true;
    throw error;
  } finally {
    if (!done) {
      // The caller stopped early (error or break). An async generator only handles `return()`
      // after its outstanding read settles, so waiting here could hang on a stalled server; the
      // caller aborts the fetch's signal instead, and the source closes once that read ends.
      void iterator.return?.().catch(() => undefined);
    }
  }
}
