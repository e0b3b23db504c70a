import { approveRun, getAccountRun, listAccountRuns, listRunChanges, listRunIssues, recordAudit } from '@dirsync/db';
import { accountOf, callerOf, requireScope } from '../auth.ts';
import type { ApiApp, ApiDeps } from '../context.ts';
import { presentRun } from '../present.ts';
import { notFound } from '../problems.ts';
import { idParams, pageOf, pageQuery, problemSchema, runChangeSchema, runIssueSchema, runSchema, runsQuery } from '@dirsync/contracts';
import { bearer, withProblems } from './common.ts';

const tags = ['runs'];

/** Run reports of the caller's account: list, show, changed objects, issues, approval. */
export function registerRunRoutes(app: ApiApp, deps: ApiDeps): void {
  const { db } = deps;

  async function ownRun(request: Parameters<typeof accountOf>[0], id: string) {
    const run = await getAccountRun(db, accountOf(request), id);
    if (!run) throw notFound(`run ${id}`);
    return run;
  }

  app.get('/runs', {
    schema: {
      tags,
      operationId: 'listRuns',
      summary: "Runs of the account's integrations, newest first",
      security: bearer,
      querystring: runsQuery,
      response: withProblems({ 200: pageOf(runSchema) }),
    },
    preHandler: requireScope('read'),
    handler: async (request) => {
      const page = await listAccountRuns(db, accountOf(request), request.query);
      return { items: page.items.map(presentRun), nextCursor: page.nextCursor };
    },
  });

  app.get('/runs/:id', {
    schema: {
      tags,
      operationId: 'getRun',
      summary: 'A run report with its counts (changed objects and issues are paged: …/changes, …/issues)',
      security: bearer,
      params: idParams,
      response: withProblems({ 200: runSchema }),
    },
    preHandler: requireScope('read'),
    handler: async (request) => presentRun(await ownRun(request, request.params.id)),
  });

  app.get('/runs/:id/changes', {
    schema: {
      tags,
      operationId: 'listRunChanges',
      summary: 'Objects the run created, updated or deleted (unless a later run changed them again)',
      security: bearer,
      params: idParams,
      querystring: pageQuery,
      response: withProblems({ 200: pageOf(runChangeSchema) }),
    },
    preHandler: requireScope('read'),
    handler: async (request) => listRunChanges(db, await ownRun(request, request.params.id), request.query.limit, request.query.cursor),
  });

  app.get('/runs/:id/issues', {
    schema: {
      tags,
      operationId: 'listRunIssues',
      summary: 'Per-object issues of the run (the first 1000 are kept; issueCount has the total)',
      security: bearer,
      params: idParams,
      querystring: pageQuery,
      response: withProblems({ 200: pageOf(runIssueSchema) }),
    },
    preHandler: requireScope('read'),
    handler: async (request) => {
      const run = await ownRun(request, request.params.id);
      return listRunIssues(db, run.id, request.query.limit, request.query.cursor);
    },
  });

  app.post('/runs/:id/approve', {
    schema: {
      tags,
      operationId: 'approveRun',
      summary: 'Approve the deletions of a run blocked by the threshold: the next run of its mode may make them',
      security: bearer,
      params: idParams,
      response: withProblems({ 200: runSchema, 409: problemSchema }),
    },
    preHandler: requireScope('admin'),
    handler: async (request) => {
      const run = await ownRun(request, request.params.id);
      const { actor } = callerOf(request);
      await approveRun(db, run.id, actor);
      await recordAudit(db, { accountId: accountOf(request), integrationId: run.integrationId, actor, action: 'run.approved', details: { runId: run.id, wouldDelete: run.wouldDelete } });
      return presentRun(await ownRun(request, run.id));
    },
  });
}

