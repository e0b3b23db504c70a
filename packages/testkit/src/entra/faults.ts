/** Which emulated service a fault applies to. */
export type EmulatedService = 'login' | 'graph';

/**
 * A fault to inject into matching requests: an error answer (429, 5xx, 410, 401…), a delay
 * (a slow page), or both. Each match uses up one of `times`.
 */
export interface FaultRule {
  readonly service: EmulatedService;
  /** Requests whose path (without the query) contains this string, or matches this pattern. */
  readonly path?: string | RegExp;
  readonly method?: string;
  /** Answer with this status instead of serving the request; absent: serve it (after `delayMs`). */
  readonly status?: number;
  /** Graph error code of the answer (defaults per status). */
  readonly code?: string;
  /** `Retry-After` header in seconds; absent: no header (the client must back off by itself). */
  readonly retryAfterSeconds?: number;
  /** Wait this long before answering. */
  readonly delayMs?: number;
  /** How many matching requests the fault applies to (default 1; Infinity for every one). */
  readonly times?: number;
  /** Matching requests to let through untouched before the fault applies (default 0). */
  readonly skip?: number;
}

interface ActiveFault extends FaultRule {
  remaining: number;
  toSkip: number;
}

/** Default error codes per status, as Graph words them. */
const defaultCodes: Record<number, string> = {
  400: 'BadRequest',
  401: 'InvalidAuthenticationToken',
  403: 'Authorization_RequestDenied',
  404: 'Request_ResourceNotFound',
  410: 'resyncRequired',
  429: 'TooManyRequests',
  500: 'InternalServerError',
  502: 'BadGateway',
  503: 'ServiceUnavailable',
  504: 'GatewayTimeout',
};

/** The error code a fault answers with. */
export function faultCode(rule: FaultRule): string {
  return rule.code ?? defaultCodes[rule.status ?? 500] ?? 'UnknownError';
}

/** Injected faults, consumed in the order they were added. */
export class FaultPlan {
  private readonly faults: ActiveFault[] = [];

  add(rule: FaultRule): void {
    this.faults.push({ ...rule, remaining: rule.times ?? 1, toSkip: rule.skip ?? 0 });
  }

  clear(): void {
    this.faults.length = 0;
  }

  /** Faults still armed. */
  get pending(): number {
    return this.faults.reduce((n, f) => n + (Number.isFinite(f.remaining) ? f.remaining : 1), 0);
  }

  /** The first armed fault matching the request, used up by one; undefined when none. */
  take(service: EmulatedService, method: string, path: string): FaultRule | undefined {
    for (const fault of this.faults) {
      if (fault.remaining <= 0 || fault.service !== service) continue;
      if (fault.method !== undefined && fault.method.toUpperCase() !== method) continue;
      if (fault.path !== undefined && !(typeof fault.path === 'string' ? path.includes(fault.path) : fault.path.test(path))) continue;
      if (fault.toSkip > 0) {
        fault.toSkip -= 1;
        continue;
      }
      fault.remaining -= 1;
      return fault;
    }
    return undefined;
  }
}
