import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { createDirsyncClient, CursorExpiredError, followChanges, verifyWebhook, WebhookVerificationError } from '../src/index.ts';

const secret = `whsec_${randomBytes(32).toString('base64')}`;
const event = { type: 'webhook.test', timestamp: '2026-12-06T12:00:00.000Z', data: {} };

function signed(body: string, options: { at?: Date; id?: string; key?: string } = {}) {
  const at = options.at ?? new Date();
  const id = options.id ?? 'msg_2b5f0c1a';
  return {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': new Webhook(options.key ?? secret).sign(id, new Date(Math.floor(at.getTime() / 1000) * 1000), body),
  };
}

describe('verifyWebhook against a forger', () => {
  const body = JSON.stringify(event);

  test('a delivery signed with the secret verifies, as a string, bytes, or with Headers', () => {
    const headers = signed(body);
    expect(verifyWebhook(secret, headers, body).type).toBe('webhook.test');
    expect(verifyWebhook(secret, new Headers(headers), new TextEncoder().encode(body)).type).toBe('webhook.test');
    expect(verifyWebhook(secret, { ...headers, 'webhook-signature': [headers['webhook-signature']] }, Buffer.from(body)).type).toBe('webhook.test');
  });

  const refused: [string, () => unknown][] = [
    ['a body changed after signing', () => verifyWebhook(secret, signed(body), body.replace('webhook.test', 'run.failed'))],
    ['a body with a byte appended', () => verifyWebhook(secret, signed(body), `${body} `)],
    ['another message id under the same signature', () => verifyWebhook(secret, { ...signed(body), 'webhook-id': 'msg_other' }, body)],
    ['a timestamp ten minutes old', () => verifyWebhook(secret, signed(body, { at: new Date(Date.now() - 10 * 60_000) }), body)],
    ['a timestamp ten minutes ahead', () => verifyWebhook(secret, signed(body, { at: new Date(Date.now() + 10 * 60_000) }), body)],
    ['an old signature given a fresh timestamp', () => verifyWebhook(secret, { ...signed(body, { at: new Date(Date.now() - 10 * 60_000) }), 'webhook-timestamp': String(Math.floor(Date.now() / 1000)) }, body)],
    ['a signature made with another secret', () => verifyWebhook(secret, signed(body, { key: `whsec_${randomBytes(32).toString('base64')}` }), body)],
    ['no signature', () => verifyWebhook(secret, { ...signed(body), 'webhook-signature': '' }, body)],
    ['a v1a (asymmetric) label on our signature', () => verifyWebhook(secret, { ...signed(body), 'webhook-signature': signed(body)['webhook-signature'].replace('v1,', 'v1a,') }, body)],
    ['a signed body that is not an event', () => verifyWebhook(secret, signed('{"type":"nope"}'), '{"type":"nope"}')],
  ];
  test.each(refused)('%s is refused', (_name, attempt) => {
    expect(attempt).toThrow(WebhookVerificationError);
  });

  test('a forged signature beside the real one (a secret rotation) does not stop the real one verifying', () => {
    const headers = signed(body);
    const forged = `v1,${randomBytes(32).toString('base64')}`;
    expect(verifyWebhook(secret, { ...headers, 'webhook-signature': `${forged} ${headers['webhook-signature']}` }, body).type).toBe('webhook.test');
    expect(() => verifyWebhook(secret, { ...headers, 'webhook-signature': forged }, body)).toThrow(WebhookVerificationError);
  });
});

describe('followChanges when the stored cursor is too old', () => {
  test('the iteration throws CursorExpiredError carrying the head and yields nothing', async () => {
    const problem = { type: '/v1/problems/cursor-expired', title: 'Gone', status: 410, detail: 'read the lists again', head: '9000' };
    const asked: string[] = [];
    const client = createDirsyncClient({
      baseUrl: 'http://api.invalid/',
      apiKey: 'dsk_key',
      fetch: async (url) => {
        asked.push(new URL(String(url)).searchParams.get('after') ?? '');
        return new Response(JSON.stringify(problem), { status: 410, headers: { 'content-type': 'application/problem+json' } });
      },
    });
    const pages: unknown[] = [];
    const following = (async () => {
      for await (const page of followChanges(client, { after: '17', stopWhenCaughtUp: true })) pages.push(page);
    })();
    await expect(following).rejects.toBeInstanceOf(CursorExpiredError);
    await expect(following).rejects.toMatchObject({ head: '9000', status: 410 });
    expect(asked).toEqual(['17']);
    expect(pages).toEqual([]);
  });
});
