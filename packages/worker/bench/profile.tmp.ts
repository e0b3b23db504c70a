export const timings = new Map<string, { n: number; ms: number }>();
export function profiled<T extends object>(sql: T): T {
  return new Proxy(sql, {
    apply(target, thisArg, args) {
      const query = Reflect.apply(target as (...a: unknown[]) => unknown, thisArg, args) as Promise<unknown>;
      const strings = args[0] as string[] & { raw?: unknown };
      if (Array.isArray(strings) && 'raw' in strings) {
        const key = strings[0]!.trim().replace(/\s+/g, ' ').slice(0, 50);
        const start = performance.now();
        void query.then(() => {
          const t = timings.get(key) ?? { n: 0, ms: 0 };
          t.n += 1;
          t.ms += performance.now() - start;
          timings.set(key, t);
        }, () => undefined);
      }
      return query;
    },
  });
}
