import { listMemberships, listObjects } from '@dirsync/db';
import { requireScope } from '../auth.ts';
import type { ApiApp, ApiDeps } from '../context.ts';
import { directoryObjectSchema, directoryQuery, idParams, membershipSchema, pageOf } from '@dirsync/contracts';
import { bearer, ownIntegration, withProblems } from './common.ts';

const tags = ['synced data'];

/** Read access to what an integration synced: users, groups, memberships (paged feeds). */
export function registerDirectoryRoutes(app: ApiApp, deps: ApiDeps): void {
  for (const [path, type] of [['users', 'user'], ['groups', 'group']] as const) {
    app.get(`/integrations/:id/${path}`, {
      schema: {
        tags,
        operationId: `list${path[0]?.toUpperCase()}${path.slice(1)}`,
        summary: `Synced ${path}, oldest change first; with updatedSince, a feed of changes including deletions`,
        security: bearer,
        params: idParams,
        querystring: directoryQuery,
        response: withProblems({ 200: pageOf(directoryObjectSchema) }),
      },
      preHandler: requireScope('read'),
      handler: async (request) => {
        const integration = await ownIntegration(deps, request, request.params.id);
        return listObjects(deps.db, integration.id, type, request.query);
      },
    });
  }

  app.get('/integrations/:id/memberships', {
    schema: {
      tags,
      operationId: 'listMemberships',
      summary: 'Group membership edges by external ids, oldest change first',
      security: bearer,
      params: idParams,
      querystring: directoryQuery,
      response: withProblems({ 200: pageOf(membershipSchema) }),
    },
    preHandler: requireScope('read'),
    handler: async (request) => {
      const integration = await ownIntegration(deps, request, request.params.id);
      return listMemberships(deps.db, integration.id, request.query);
    },
  });
}
