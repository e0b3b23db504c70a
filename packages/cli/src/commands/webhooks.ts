import type { Command } from 'commander';
import { z } from 'zod';
import { webhookDeliverySchema, webhookEndpointSchema, webhookEndpointWithSecretSchema, webhookEventTypes, webhookTestAcceptedSchema, webhookUrlProblem } from '@dirsync/contracts';
import {
  createWebhookEndpoint,
  deleteWebhookEndpoint,
  getAccount,
  getWebhookEndpoint,
  listWebhookDeliveries,
  listWebhookEndpoints,
  recordAudit,
  recordWebhookEvent,
  redeliverWebhookDelivery,
  rotateWebhookSecret,
  updateWebhookEndpoint,
  webhookMessageId,
  type WebhookEndpointRow,
} from '@dirsync/db';
import type { Context } from '../context.ts';
import { UserError, UsageError, NotFoundError } from '../errors.ts';
import { keyValues, printJson, table } from '../format.ts';

type WithContext = (run: (ctx: Context) => Promise<void>) => Promise<void>;

// The CLI writes to PostgreSQL only: the workers' sweep hands every endpoint with a delivery due
// to the webhook queue within seconds, so a redelivery or a test needs no Redis here.

async function accountIdOf(ctx: Context, account: string): Promise<string> {
  const found = await getAccount(ctx.db(), account);
  if (!found) throw new NotFoundError(`no account "${account}"`);
  return found.id;
}

async function endpointOf(ctx: Context, accountId: string, id: string): Promise<WebhookEndpointRow> {
  const endpoint = await getWebhookEndpoint(ctx.db(), accountId, id);
  if (!endpoint) throw new NotFoundError(`the account has no webhook ${id}`);
  return endpoint;
}

function eventsOf(text: string): string[] {
  const events = text.split(',').map((e) => e.trim()).filter((e) => e !== '');
  if (events.length === 0) throw new UsageError('--events: name at least one event type, or *');
  if (events.includes('*')) {
    if (events.length > 1) throw new UsageError('--events: * stands alone');
    return ['*'];
  }
  const unknown = events.filter((e) => !(webhookEventTypes as readonly string[]).includes(e));
  if (unknown.length > 0) throw new UsageError(`--events: unknown event type ${unknown.join(', ')} (known: ${webhookEventTypes.join(', ')})`);
  return events;
}

function checkUrl(ctx: Context, url: string): string {
  const problem = webhookUrlProblem(url, { allowHttp: ctx.config.DIRSYNC_WEBHOOK_ALLOW_HTTP });
  if (problem !== undefined) throw new UserError(`the URL ${problem}`);
  return url;
}

// `--json` prints what the `/v1/webhooks` routes answer, held to their schemas (never a secret
// but the one `add` and `rotate-secret` exist to show).
const endpointListSchema = z.object({ items: z.array(webhookEndpointSchema) });
const deliveryListSchema = z.object({ items: z.array(webhookDeliverySchema), nextCursor: z.string().nullable() });

function describe(endpoint: WebhookEndpointRow): string {
  return keyValues([
    ['id', endpoint.id],
    ['url', endpoint.url],
    ['events', endpoint.events.join(', ')],
    ['description', endpoint.description],
    ['enabled', endpoint.enabled],
    ['disabled because', endpoint.disabledReason],
    ['failure streak', endpoint.failureStreak],
    ['created', endpoint.createdAt],
    ['updated', endpoint.updatedAt],
  ]);
}

/** `dirsync webhooks …`: an account's signed-webhook endpoints. */
export function registerWebhookCommands(program: Command, withContext: WithContext): void {
  const webhooks = program.command('webhooks').description("signed webhooks (Standard Webhooks) of an account's events");

  webhooks
    .command('add <url>')
    .description('add an endpoint; prints its signing secret, this once')
    .requiredOption('--account <account>', 'account id or name')
    .option('--events <types>', `comma-separated event types, or * for all (${webhookEventTypes.join(', ')})`, '*')
    .option('--description <text>', 'what the endpoint is for', '')
    .option('--json', 'print the endpoint and its secret as JSON')
    .action((url: string, flags: { account: string; events: string; description: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const accountId = await accountIdOf(ctx, flags.account);
        const { endpoint, secret } = await createWebhookEndpoint(ctx.db(), ctx.keyRing(), { accountId, url: checkUrl(ctx, url), events: eventsOf(flags.events), description: flags.description });
        await recordAudit(ctx.db(), { accountId, actor: 'cli', action: 'webhook.created', details: { webhookId: endpoint.id, events: endpoint.events } });
        if (flags.json) {
          printJson(webhookEndpointWithSecretSchema, { ...endpoint, secret });
          return;
        }
        console.log(describe(endpoint));
        console.log(`\nsigning secret (shown once; verify the webhook-signature header with it):\n${secret}`);
      }),
    );

  webhooks
    .command('list')
    .description("the account's endpoints")
    .requiredOption('--account <account>', 'account id or name')
    .option('--json', 'print JSON as GET /v1/webhooks answers: { "items": [endpoint] }')
    .action((flags: { account: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const rows = await listWebhookEndpoints(ctx.db(), await accountIdOf(ctx, flags.account));
        if (flags.json) {
          printJson(endpointListSchema, { items: rows });
          return;
        }
        console.log(table(['id', 'url', 'events', 'enabled', 'failures', 'description'], rows.map((e) => [e.id, e.url, e.events.join(','), e.enabled, e.failureStreak, e.description])));
      }),
    );

  webhooks
    .command('show <id>')
    .description('one endpoint')
    .requiredOption('--account <account>', 'account id or name')
    .option('--json', 'print JSON as GET /v1/webhooks/{id} answers')
    .action((id: string, flags: { account: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const endpoint = await endpointOf(ctx, await accountIdOf(ctx, flags.account), id);
        if (flags.json) printJson(webhookEndpointSchema, endpoint);
        else console.log(describe(endpoint));
      }),
    );

  webhooks
    .command('update <id>')
    .description('change an endpoint; --enable resets its failure streak and delivers what waited')
    .requiredOption('--account <account>', 'account id or name')
    .option('--url <url>', 'new URL')
    .option('--events <types>', 'comma-separated event types, or *')
    .option('--description <text>', 'new description')
    .option('--enable', 'enable it')
    .option('--disable', 'disable it (its events are not recorded for it meanwhile)')
    .option('--json', 'print JSON as PATCH /v1/webhooks/{id} answers')
    .action((id: string, flags: { account: string; url?: string; events?: string; description?: string; enable?: boolean; disable?: boolean; json?: boolean }) =>
      withContext(async (ctx) => {
        if (flags.enable && flags.disable) throw new UsageError('give --enable or --disable, not both');
        const accountId = await accountIdOf(ctx, flags.account);
        const endpoint = await updateWebhookEndpoint(ctx.db(), accountId, id, {
          url: flags.url === undefined ? undefined : checkUrl(ctx, flags.url),
          events: flags.events === undefined ? undefined : eventsOf(flags.events),
          description: flags.description,
          enabled: flags.enable ? true : flags.disable ? false : undefined,
        });
        if (!endpoint) throw new NotFoundError(`the account has no webhook ${id}`);
        await recordAudit(ctx.db(), { accountId, actor: 'cli', action: 'webhook.updated', details: { webhookId: endpoint.id } });
        if (flags.json) printJson(webhookEndpointSchema, endpoint);
        else console.log(describe(endpoint));
      }),
    );

  webhooks
    .command('remove <id>')
    .description('remove an endpoint and its deliveries')
    .requiredOption('--account <account>', 'account id or name')
    .action((id: string, flags: { account: string }) =>
      withContext(async (ctx) => {
        const accountId = await accountIdOf(ctx, flags.account);
        if (!(await deleteWebhookEndpoint(ctx.db(), accountId, id))) throw new NotFoundError(`the account has no webhook ${id}`);
        await recordAudit(ctx.db(), { accountId, actor: 'cli', action: 'webhook.deleted', details: { webhookId: id } });
        console.log(`removed webhook ${id}`);
      }),
    );

  webhooks
    .command('rotate-secret <id>')
    .description('replace the signing secret; prints the new one, this once')
    .requiredOption('--account <account>', 'account id or name')
    .action((id: string, flags: { account: string }) =>
      withContext(async (ctx) => {
        const accountId = await accountIdOf(ctx, flags.account);
        const secret = await rotateWebhookSecret(ctx.db(), ctx.keyRing(), accountId, id);
        if (secret === undefined) throw new NotFoundError(`the account has no webhook ${id}`);
        await recordAudit(ctx.db(), { accountId, actor: 'cli', action: 'webhook.secret_rotated', details: { webhookId: id } });
        console.log(secret);
      }),
    );

  webhooks
    .command('deliveries <id>')
    .description("an endpoint's deliveries, newest first")
    .requiredOption('--account <account>', 'account id or name')
    .option('-n, --limit <n>', 'how many', '20')
    .option('--json', 'print JSON as GET /v1/webhooks/{id}/deliveries answers: { "items": [delivery], "nextCursor" }')
    .action((id: string, flags: { account: string; limit: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const limit = Number(flags.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 200) throw new UsageError('--limit must be 1–200');
        const page = await listWebhookDeliveries(ctx.db(), await accountIdOf(ctx, flags.account), id, { limit });
        if (!page) throw new NotFoundError(`the account has no webhook ${id}`);
        if (flags.json) {
          printJson(deliveryListSchema, page);
          return;
        }
        console.log(
          table(
            ['delivery', 'event', 'status', 'attempts', 'last answer', 'next attempt', 'created'],
            page.items.map((d) => [d.id, d.eventType, d.status, d.attempts, d.lastStatusCode ?? d.lastError, d.nextAttemptAt, d.createdAt]),
          ),
        );
      }),
    );

  webhooks
    .command('redeliver <id> <delivery>')
    .description('send a delivery again (same webhook-id); workers pick it up within seconds')
    .requiredOption('--account <account>', 'account id or name')
    .option('--json', 'print the delivery as JSON, as POST /v1/webhooks/{id}/deliveries/{delivery}/redeliver answers')
    .action((id: string, deliveryId: string, flags: { account: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const accountId = await accountIdOf(ctx, flags.account);
        const delivery = await redeliverWebhookDelivery(ctx.db(), accountId, id, deliveryId);
        if (!delivery) throw new NotFoundError(`webhook ${id} of the account has no delivery ${deliveryId}`);
        await recordAudit(ctx.db(), { accountId, actor: 'cli', action: 'webhook.redelivered', details: { webhookId: id, deliveryId } });
        if (flags.json) printJson(webhookDeliverySchema, delivery);
        else console.log(`delivery ${delivery.id} queued again (${delivery.messageId})`);
      }),
    );

  webhooks
    .command('test <id>')
    .description('send a webhook.test event to the endpoint; workers pick it up within seconds')
    .requiredOption('--account <account>', 'account id or name')
    .option('--json', 'print JSON as POST /v1/webhooks/{id}/test answers: { "messageId" }')
    .action((id: string, flags: { account: string; json?: boolean }) =>
      withContext(async (ctx) => {
        const accountId = await accountIdOf(ctx, flags.account);
        const endpoint = await endpointOf(ctx, accountId, id);
        const recorded = await recordWebhookEvent(ctx.db(), { accountId, type: 'webhook.test', endpointId: endpoint.id, data: { webhookId: endpoint.id, requestedBy: 'cli' } });
        const messageId = webhookMessageId(recorded.eventId ?? '');
        if (flags.json) printJson(webhookTestAcceptedSchema, { messageId });
        else console.log(`test event queued (${messageId}): dirsync webhooks deliveries ${endpoint.id} --account ${flags.account}`);
      }),
    );
}
