import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { scopeAllows, type Db } from '@dirsync/db';
import { createQueueClient, type RedisConnection } from '@dirsync/jobs';
import { authenticate, dashboardRealm } from '../auth.ts';
import { ProblemError, sendProblem } from '../problems.ts';

/** Where the queue dashboard is served. */
export const dashboardPath = '/admin/queues';

/**
 * Mounts Bull Board for every dirsync queue (each sync shard, control, rotation) at {@link dashboardPath}. It shows every account's
 * jobs, so only platform keys (no account) with the `admin` scope may open it; a browser is asked
 * for the key with a Basic challenge (any user name, the key as password). Returns a function
 * that closes its queue connections.
 */
export async function registerDashboard(
  app: FastifyInstance,
  deps: { db: Db; connection: RedisConnection; prefix?: string | undefined; logger: Logger },
): Promise<() => Promise<void>> {
  const client = createQueueClient({ connection: deps.connection, prefix: deps.prefix });
  const queues = client.allQueues();
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(dashboardPath);
  createBullBoard({
    queues: queues.map((queue) => new BullMQAdapter(queue)),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'dirsync queues' } },
  });
  await app.register(
    async (scope) => {
      // Answered here rather than thrown: Bull Board's plugin has an error handler of its own,
      // which would drop the problem body and the Basic challenge.
      scope.addHook('onRequest', async (request, reply) => {
        try {
          const caller = await authenticate(deps.db, request, 'basic');
          if (caller.accountId !== undefined || !scopeAllows(caller.scopes, 'admin')) {
            throw new ProblemError(403, 'platform-admin-required', `the queue dashboard shows every account's jobs: it needs a platform key with the admin scope (${dashboardRealm})`);
          }
          request.caller = caller;
        } catch (error) {
          return sendProblem(error, request, reply, deps.logger);
        }
        return undefined;
      });
      await scope.register(serverAdapter.registerPlugin(), { prefix: dashboardPath });
    },
  );
  return async () => {
    await client.close();
  };
}
