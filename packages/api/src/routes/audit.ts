import { auditPageSchema, auditQuery } from '@dirsync/contracts';
import { listAccountAudit } from '@dirsync/db';
import { accountOf, requireScope } from '../auth.ts';
import type { ApiApp, ApiDeps } from '../context.ts';
import { bearer, withProblems } from './common.ts';

const tags = ['audit'];

/** The account's audit log: who changed what, newest first. */
export function registerAuditRoutes(app: ApiApp, deps: ApiDeps): void {
  const { db } = deps;

  app.get('/audit', {
    schema: {
      tags,
      operationId: 'listAudit',
      summary: "The account's audit log, newest first",
      description:
        'Changes made through the API, the console and the CLI, and what the workers recorded about the account (a consent found revoked); events of no account (connector certificate rotations) are not listed. ' +
        'Needs the `admin` scope: the log names who holds which key. Page with `cursor` (the `nextCursor` of the previous page).',
      security: bearer,
      querystring: auditQuery,
      response: withProblems({ 200: auditPageSchema }),
    },
    preHandler: requireScope('admin'),
    handler: async (request) => listAccountAudit(db, accountOf(request), request.query),
  });
}
