import { createHash } from 'node:crypto';

/**
 * Behaviours of a real Entra ID tenant that make a client's life hard, each off unless a test
 * turns it on (see {@link realisticEntraBehaviour}). Every one follows a Microsoft document, named
 * beside its implementation in `server.ts` / `rounds.ts` and in the emulator's README.
 */
export interface EntraRealism {
  /** Seed of every random choice (default 1): the same seed and requests give the same answers. */
  seed?: number;
  /** Tokens carry `roles` fixed at issue time; after a consent (grant or change) tokens issued within this many ms
      still carry the roles held before (none for a first consent). */
  consentPropagationMs?: number;
  /** A certificate added with addKey is refused at the token endpoint (AADSTS700027) for this long, per tenant
      (the app's home tenant and each customer tenant may see it at different times: a per-tenant jitter up to this value). */
  keyPropagationMs?: number;
  /** Changes become visible to delta rounds only after this long (replication lag). */
  replicationLagMs?: number;
  /** A large group's members@delta parts are placed far apart in the round (other groups' records between them, across pages). */
  spreadGroupRecords?: boolean;
  /** Continuation records of a group repeat its full properties (not only id + members@delta). */
  continuationWithProperties?: boolean;
  /** Probability (0..1) that an object appears twice in a round. */
  duplicateRate?: number;
  /** In rounds from a delta link, changed objects carry only the changed properties (plus id). */
  partialRecords?: boolean;
  /** Properties whose value is null are omitted from records (initial rounds too). In partial records a
      property that changed TO null is sent as explicit null. */
  omitNulls?: boolean;
  /** Probability (0..1) of an empty page (value: []) that still carries a nextLink. */
  emptyPageRate?: number;
  /** Page size chosen by the server: ignores Prefer odata.maxpagesize (e.g. 100..999 varying). */
  serverPageSize?: number | { min: number; max: number };
  /** An expired delta/skip token is answered 410 Gone with a Location header (a fresh initial delta URL) instead of 400 syncStateNotFound. */
  goneWithLocation?: boolean;
  /** Throttling budgets (429 + Retry-After) per app per tenant and per tenant across apps. */
  throttle?: { perAppPerTenant?: { requests: number; windowMs: number }; perTenant?: { requests: number; windowMs: number } };
  /** Consent error redirects (deny, cancel) carry no `state` parameter. */
  consentErrorsWithoutState?: boolean;
}

/**
 * Every {@link EntraRealism} behaviour on, with delays of a few seconds at most (tests wait them
 * out) and a fixed seed; `overrides` replace single settings.
 */
export function realisticEntraBehaviour(overrides: Partial<EntraRealism> = {}): EntraRealism {
  return {
    seed: 20_240_601,
    consentPropagationMs: 2_000,
    keyPropagationMs: 3_000,
    replicationLagMs: 1_500,
    spreadGroupRecords: true,
    continuationWithProperties: true,
    duplicateRate: 0.05,
    partialRecords: true,
    omitNulls: true,
    emptyPageRate: 0.1,
    serverPageSize: { min: 100, max: 999 },
    goneWithLocation: true,
    throttle: { perAppPerTenant: { requests: 200, windowMs: 1_000 }, perTenant: { requests: 400, windowMs: 1_000 } },
    consentErrorsWithoutState: true,
    ...overrides,
  };
}

/**
 * A number in [0, 1) fixed by the seed and the keys: the same question always gets the same
 * answer, whatever order requests come in (a page asked for again is the same page).
 */
export function seededUnit(seed: number, ...keys: readonly (string | number)[]): number {
  const digest = createHash('sha256').update(`${seed}\u0000${keys.join('\u0000')}`).digest();
  return digest.readUInt32BE(0) / 0x1_0000_0000;
}

/** Whether any behaviour that changes what a delta round returns is on. */
export function shapesDeltaRounds(realism: EntraRealism): boolean {
  return Boolean(
    (realism.replicationLagMs ?? 0) > 0 ||
      realism.spreadGroupRecords ||
      realism.continuationWithProperties ||
      (realism.duplicateRate ?? 0) > 0 ||
      realism.partialRecords ||
      realism.omitNulls ||
      (realism.emptyPageRate ?? 0) > 0 ||
      realism.serverPageSize !== undefined,
  );
}

/** Requests counted in a sliding window; refuses those over budget. */
export class SlidingWindowBudget {
  private readonly windows = new Map<string, number[]>();

  /**
   * Undefined when `key` has room for one more request at `now` (not counted: see
   * {@link count}); otherwise how many ms until the oldest counted request leaves the window.
   */
  wouldRefuse(key: string, budget: { requests: number; windowMs: number }, now: number): number | undefined {
    const times = this.windows.get(key) ?? [];
    while (times.length > 0 && (times[0] as number) <= now - budget.windowMs) times.shift();
    return times.length >= budget.requests ? (times[0] as number) + budget.windowMs - now : undefined;
  }

  /** Records a request under `key` at `now`. */
  count(key: string, now: number): void {
    const times = this.windows.get(key) ?? [];
    times.push(now);
    this.windows.set(key, times);
  }

  clear(): void {
    this.windows.clear();
  }
}
