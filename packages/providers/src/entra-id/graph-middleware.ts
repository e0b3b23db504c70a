import type { Context, FetchOptions, Middleware, MiddlewareOptions } from '@microsoft/microsoft-graph-client';
import { ConfigError, UnavailableError } from '../errors.ts';
import type { CheckedHttp } from '../net/undici.ts';
import type { MicrosoftSdks } from './sdk.ts';

/**
 * What one Graph call carries through the middleware chain (a middleware option, found by its
 * class in the request's middleware control): its abort signal, the throttling it waited out,
 * and the first error a middleware threw — the SDK wraps errors into its own `GraphError`,
 * losing their type, so the caller reads the original here.
 */
export class GraphRequestState implements MiddlewareOptions {
  readonly signal: AbortSignal;
  /** Time waited on throttling answers during this call (every attempt). */
  throttledMs = 0;
  /** Throttling answers waited out during this call. */
  throttles = 0;
  /** The first error thrown inside the chain, untouched. */
  failure: unknown = undefined;
  /** The last URL sent, against which a relative `Location` resolves. */
  lastUrl: string | undefined;

  constructor(signal: AbortSignal) {
    this.signal = signal;
  }

  /** The state of the call `context` belongs to, if it is one of GraphClient's. */
  static of(context: Context): GraphRequestState | undefined {
    const found = context.middlewareControl?.getMiddlewareOptions(GraphRequestState);
    return found instanceof GraphRequestState ? found : undefined;
  }
}

/** Keeps the first error thrown further down the chain on the call's {@link GraphRequestState}. */
export class FailureCapture implements Middleware {
  #next: Middleware | undefined;

  async execute(context: Context): Promise<void> {
    try {
      await this.#nextOf().execute(context);
    } catch (error) {
      const state = GraphRequestState.of(context);
      if (state !== undefined && state.failure === undefined) state.failure = error;
      throw error;
    }
  }

  setNext(next: Middleware): void {
    this.#next = next;
  }

  #nextOf(): Middleware {
    if (this.#next === undefined) throw new Error('FailureCapture must not end the middleware chain');
    return this.#next;
  }
}

/** How throttling (429/503/504) is waited out: see {@link throttleRetryHandler}. */
export interface ThrottlePolicy {
  /** Base delay handed to the SDK's options (it uses it only to judge; waits come from `waitFor`). */
  readonly baseDelayMs: number;
  /**
   * How long to wait after this throttling answer, the call having waited out `throttles`
   * before: Retry-After when given, else the configured backoff.
   */
  readonly waitFor: (response: Response, throttles: number) => number;
  /** Longest total wait on throttling within one call before it fails as unavailable. */
  readonly maxWaitMs: number;
  /** Waits `ms`, rejecting with the signal's reason when it aborts. */
  readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  /** Told of every wait, to keep the client's counters. */
  readonly onWait: (ms: number) => void;
}

/** The SDK's ceiling on retries per call (`RetryHandlerOptions` refuses more). */
export const sdkMaxRetries = 10;
/** The SDK's ceiling on its base delay, in seconds. */
const sdkMaxDelaySeconds = 180;

/**
 * The SDK's RetryHandler (which answers to retry — 429/503/504 —, how often, re-sending the
 * call) with its waits made abortable and budgeted: each wait lasts what the policy's `waitFor`
 * says (the SDK caps Retry-After at 180 s and its own backoff ignores the configured delays),
 * goes through the policy's `sleep` with the call's signal, counts toward the call's throttling,
 * and a wait that would take the call past `maxWaitMs` ends it with an {@link UnavailableError}
 * carrying the advised delay. Made from the loaded SDK (see `microsoftSdks`), whose class it extends.
 */
export function throttleRetryHandler(graph: MicrosoftSdks['graph'], policy: ThrottlePolicy): Middleware {
  let handler = throttleHandlers.get(graph);
  if (handler === undefined) {
    handler = throttleRetryHandlerClass(graph);
    throttleHandlers.set(graph, handler);
  }
  return new handler(policy);
}

type ThrottleHandlerClass = new (policy: ThrottlePolicy) => Middleware;
const throttleHandlers = new WeakMap<MicrosoftSdks['graph'], ThrottleHandlerClass>();

function throttleRetryHandlerClass({ RetryHandler, RetryHandlerOptions }: MicrosoftSdks['graph']): ThrottleHandlerClass {
  return class ThrottleRetryHandler extends RetryHandler {
    /** Each call's state by its fetch options (the object the SDK hands to `shouldRetry`). */
    readonly #states: WeakMap<FetchOptions, GraphRequestState>;

    constructor(policy: ThrottlePolicy) {
      // The SDK decides (shouldRetry), computes the delay and calls its private `sleep` in one
      // synchronous run, so the state shouldRetry names is the one the next sleep serves.
      let pending: { state: GraphRequestState; response: Response } | undefined;
      const states = new WeakMap<FetchOptions, GraphRequestState>();
      const options = new RetryHandlerOptions(
        Math.min(sdkMaxDelaySeconds, Math.max(0, policy.baseDelayMs / 1000)),
        sdkMaxRetries,
        (_delay, _attempt, _request, fetchOptions, response) => {
          const state = fetchOptions === undefined ? undefined : states.get(fetchOptions);
          if (state === undefined) return false;
          pending = { state, response };
          return true;
        },
      );
      super(options);
      this.#states = states;
      // RetryHandler's own wait is a bare timer no signal ends; this replaces it on the instance.
      (this as unknown as { sleep: (seconds: number) => Promise<void> }).sleep = async () => {
        const current = pending;
        pending = undefined;
        if (current === undefined) throw new Error('ThrottleRetryHandler: a wait without a call');
        const { state, response } = current;
        const ms = Math.max(0, policy.waitFor(response, state.throttles));
        if (state.throttledMs + ms > policy.maxWaitMs) {
          throw new UnavailableError(
            `Graph kept throttling ${pathOf(state.lastUrl ?? response.url)} (${response.status}) for ${Math.round(state.throttledMs / 1000)} s`,
            { retryAfterMs: ms },
          );
        }
        await policy.sleep(ms, state.signal);
        state.throttledMs += ms;
        state.throttles += 1;
        policy.onWait(ms);
      };
    }

    override async execute(context: Context): Promise<void> {
      const state = GraphRequestState.of(context);
      if (state !== undefined && context.options !== undefined) this.#states.set(context.options, state);
      await super.execute(context);
    }
  };
}

function pathOf(url: string): string {
  try {
    return new URL(url).pathname;
  } catch {
    return 'a Graph URL';
  }
}

/** The text of each answer {@link UndiciSender} read, by the `Response` it handed the SDK. */
const answerTexts = new WeakMap<Response, string>();

/**
 * The body of an answer as {@link UndiciSender} read it; another `Response` is read. Reading the
 * `Response` itself would encode the text into bytes, gather them and decode them again: three
 * more copies of every page, about half of what the worker allocated in blocks of 128 KB or more
 * during the Entra benchmark.
 */
export function answerText(response: Response): Promise<string> {
  const text = answerTexts.get(response);
  return text === undefined ? response.text() : Promise.resolve(text);
}

/** Options of {@link UndiciSender}. */
export interface UndiciSenderOptions {
  /** The only origin requests may go to: the token must never leave it. */
  readonly origin: string;
  /** Connections through the destination policy, with this client's own CA trust. */
  readonly http: CheckedHttp;
  /** Reads an answer's body, refusing one too large. */
  readonly readBody: (body: AsyncIterable<Uint8Array> & { destroy(error?: Error): unknown }, what: string) => Promise<string>;
}

/**
 * The end of the chain: sends with undici through the client's dispatcher (destination policy,
 * scoped CA), reads the body within its bound, and hands the SDK a `Response`. A URL on another
 * origin than Graph's (a redirect or a link elsewhere) is refused before anything is sent.
 */
export class UndiciSender implements Middleware {
  readonly #options: UndiciSenderOptions;

  constructor(options: UndiciSenderOptions) {
    this.#options = options;
  }

  async execute(context: Context): Promise<void> {
    const state = GraphRequestState.of(context);
    const raw = typeof context.request === 'string' ? context.request : context.request.url;
    const url = new URL(raw, state?.lastUrl ?? this.#options.origin);
    if (url.origin !== this.#options.origin) {
      throw new ConfigError(`Graph answered with a link outside ${this.#options.origin}; refusing to follow it`);
    }
    if (state !== undefined) state.lastUrl = url.href;
    const options = context.options ?? {};
    const method = (options.method ?? 'GET').toUpperCase();
    const body = options.body;
    if (body !== undefined && body !== null && typeof body !== 'string') {
      throw new ConfigError('GraphClient sends JSON text bodies only');
    }
    const signal = state?.signal ?? (options.signal as AbortSignal | null | undefined) ?? undefined;
    const { agent, request } = this.#options.http;
    const response = await request(url, {
      method: method as 'GET',
      dispatcher: agent,
      headers: headerRecord(options.headers),
      ...(signal === undefined ? {} : { signal }),
      ...(typeof body === 'string' ? { body } : {}),
    });
    const text = await this.#options.readBody(response.body, `Graph's answer to ${method} ${url.pathname}`);
    const headers = new Headers();
    for (const [name, value] of Object.entries(response.headers)) {
      if (value === undefined) continue;
      for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one);
    }
    const status = response.statusCode;
    const nullBody = [101, 204, 205, 304].includes(status);
    const answer = new Response(nullBody ? null : encodedOnRead(text), { status, headers });
    answerTexts.set(answer, nullBody ? '' : text);
    // The SDK's RedirectHandler compares this URL with the Location's origin.
    Object.defineProperty(answer, 'url', { value: url.href });
    context.response = answer;
  }
}

/**
 * `text` as a body encoded only if something reads it. The client reads the text itself
 * ({@link answerText}); given the string, `Response` would measure its UTF-8 length when made: in
 * a profile of the worker over one Entra benchmark run, 0.9 s in that scan and in flattening the
 * pieces of each page's text (which `JSON.parse` now does instead). Measured alone on pages of
 * 2.4 MB, `Response` and `JSON.parse` together took 4–30 % less time with this body.
 */
function encodedOnRead(text: string): ReadableStream<Uint8Array> {
  return new ReadableStream({
    pull(controller) {
      controller.enqueue(new TextEncoder().encode(text));
      controller.close();
    },
  });
}

function headerRecord(headers: FetchOptions['headers']): Record<string, string> {
  const record: Record<string, string> = {};
  if (headers === undefined) return record;
  new Headers(headers as ConstructorParameters<typeof Headers>[0]).forEach((value, name) => {
    record[name] = value;
  });
  return record;
}
