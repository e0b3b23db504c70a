/** Wall time per SQL statement shape (its first words), summed over a run: where a sync waits. */
export const statementTimes = new Map<string, { count: number; ms: number }>();

/**
 * Wraps a postgres.js handle so each executed tagged query adds its time to
 * {@link statementTimes}. Statements running at once on several connections all count, so the
 * sum can exceed wall time. Only for the benchmark: it starts every query it sees, so it must not
 * wrap code that builds query fragments.
 */
export function timed<T extends object>(sql: T): T {
  return new Proxy(sql, {
    apply(target, thisArg, args) {
      const query = Reflect.apply(target as (...a: unknown[]) => unknown, thisArg, args) as Promise<unknown>;
      const strings = args[0] as unknown;
      if (Array.isArray(strings) && 'raw' in strings) {
        // The words after the first parameter tell apart statements that open alike (`with input …`).
        const words = (text: unknown) => String(text ?? '').trim().replace(/\s+/g, ' ');
        const key = `${words(strings[0]).slice(0, 50)} … ${words(strings[1]).slice(0, 40)}`;
        const start = performance.now();
        void query.then(
          () => {
            const entry = statementTimes.get(key) ?? { count: 0, ms: 0 };
            entry.count += 1;
            entry.ms += performance.now() - start;
            statementTimes.set(key, entry);
          },
          () => undefined,
        );
      }
      return query;
    },
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      // A fenced step's statements run on the transaction `begin` (or `savepoint`) hands out.
      if ((property === 'begin' || property === 'savepoint') && typeof value === 'function') {
        return (fn: (tx: object) => unknown) => (value as (f: (tx: object) => unknown) => unknown).call(target, (tx: object) => fn(timed(tx)));
      }
      return value;
    },
  });
}
