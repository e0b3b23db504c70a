import http from 'node:http';
import https from 'node:https';
import { Webhook } from 'standardwebhooks';
import { WEBHOOK_HEADERS, webhookUrlProblem } from '@dirsync/contracts';
import { DestinationPolicy, findDestinationRefusal } from '@dirsync/providers';

/** What a delivery attempt needs. */
export interface WebhookRequest {
  readonly url: string;
  readonly secret: string;
  /** `webhook-id`: the same on every attempt of one delivery. */
  readonly messageId: string;
  readonly body: string;
  readonly policy: DestinationPolicy;
  readonly allowHttp: boolean;
  readonly timeoutMs: number;
  /** Bytes of the answer read at most (the rest is dropped with the connection). */
  readonly maxResponseBytes: number;
  readonly now?: (() => Date) | undefined;
}

/** How an attempt went. Only a 2xx answer is a success. */
export interface WebhookAttempt {
  readonly ok: boolean;
  readonly statusCode: number | null;
  /** One line, never the secret or the signature. */
  readonly error: string | null;
  /** The receiver answered 410 Gone: it wants no more deliveries. */
  readonly gone: boolean;
  /** The URL was refused (scheme, destination policy): retrying cannot help until it changes. */
  readonly refused: boolean;
}

/** The Standard Webhooks headers of one attempt: a fresh timestamp, the same message id. */
export function signedHeaders(secret: string, messageId: string, body: string, at: Date): Record<string, string> {
  const timestamp = Math.floor(at.getTime() / 1000);
  return {
    [WEBHOOK_HEADERS.id]: messageId,
    [WEBHOOK_HEADERS.timestamp]: String(timestamp),
    [WEBHOOK_HEADERS.signature]: new Webhook(secret).sign(messageId, new Date(timestamp * 1000), body),
  };
}

const failure = (error: string, statusCode: number | null = null, refused = false): WebhookAttempt => ({ ok: false, statusCode, error, gone: false, refused });

/**
 * One POST of a signed event. The URL is checked again (scheme, no credentials), its host
 * resolved once and every address checked against the destination policy, and the connection
 * made to those addresses only (no second lookup a rebinding name could answer differently).
 * Redirects are not followed (a 3xx is a failure); the answer is read up to
 * `maxResponseBytes`; the whole exchange is bounded by `timeoutMs`.
 */
export async function postWebhook(request: WebhookRequest): Promise<WebhookAttempt> {
  const problem = webhookUrlProblem(request.url, { allowHttp: request.allowHttp });
  if (problem !== undefined) return failure(`the endpoint URL ${problem}`, null, true);
  const url = new URL(request.url);
  const secure = url.protocol === 'https:';
  const port = url.port === '' ? (secure ? 443 : 80) : Number(url.port);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  // The lookup counts against the timeout: the endpoint's owner controls its name server, which
  // may never answer.
  const deadline = Date.now() + request.timeoutMs;
  let lookupTimer: NodeJS.Timeout | undefined;
  const lookupExpired = new Promise<'expired'>((resolve) => {
    lookupTimer = setTimeout(() => resolve('expired'), request.timeoutMs);
  });
  let checked;
  try {
    checked = await Promise.race([request.policy.check({ host, port, label: `${url.protocol}//${url.host}` }), lookupExpired]);
    if (checked === 'expired') return failure(`no answer within ${request.timeoutMs} ms (the name ${host} did not resolve)`);
  } catch (error) {
    const refusal = findDestinationRefusal(error);
    if (refusal) return failure(refusal.message, null, true);
    return failure(`cannot resolve ${host}: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    clearTimeout(lookupTimer);
  }
  const headers = {
    'content-type': 'application/json',
    'user-agent': 'dirsync-webhooks/1',
    ...signedHeaders(request.secret, request.messageId, request.body, (request.now ?? (() => new Date()))()),
  };
  const options: https.RequestOptions = {
    method: 'POST',
    host,
    port,
    path: `${url.pathname}${url.search}`,
    headers: { ...headers, 'content-length': String(Buffer.byteLength(request.body)) },
    lookup: checked.lookup,
    agent: false,
    ...(secure ? { servername: host } : {}),
  };
  return new Promise<WebhookAttempt>((resolve) => {
    let settled = false;
    const settle = (attempt: WebhookAttempt) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(attempt);
    };
    const req = (secure ? https : http).request(options, (res) => {
      const status = res.statusCode ?? 0;
      let read = 0;
      res.on('data', (chunk: Buffer) => {
        read += chunk.length;
        // Nothing of the answer is used beyond its status: the rest is not worth reading.
        if (read > request.maxResponseBytes) {
          res.destroy();
          finish();
        }
      });
      const finish = () => {
        req.destroy();
        if (status >= 200 && status < 300) settle({ ok: true, statusCode: status, error: null, gone: false, refused: false });
        else settle({ ok: false, statusCode: status, error: status >= 300 && status < 400 ? `answered ${status} (redirects are not followed)` : `answered ${status}`, gone: status === 410, refused: false });
      };
      res.on('end', finish);
      res.on('error', finish);
      res.on('close', finish);
    });
    const timer = setTimeout(() => {
      req.destroy();
      settle(failure(`no answer within ${request.timeoutMs} ms`));
    }, Math.max(1, deadline - Date.now()));
    req.on('error', (error: NodeJS.ErrnoException) => {
      const refusal = findDestinationRefusal(error);
      settle(refusal ? failure(refusal.message, null, true) : failure(`connection failed: ${error.code ?? error.message}`));
    });
    req.end(request.body);
  });
}
