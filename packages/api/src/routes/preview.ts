import { type AttributeMapping, idParams, PREVIEW_DEFAULT_LIMIT, previewRequestSchema, previewResultSchema, problemSchema } from '@dirsync/contracts';
import { callerOf, requireScope } from '../auth.ts';
import type { ApiApp, ApiDeps } from '../context.ts';
import { ProblemError } from '../problems.ts';
import { bearer, ownIntegration, withProblems } from './common.ts';

/**
 * The unsaved mapping checked as the integration's settings would hold it, so that it meets the
 * same rules (kind, structural fields, sources, patterns) as on save; 422 listing each problem
 * at its path otherwise.
 */
function checkMapping(deps: ApiDeps, kind: string, stored: Record<string, unknown>, attributeMapping: unknown): AttributeMapping {
  const checked = deps.validateSettings(kind, { ...stored, attributeMapping });
  if (checked.ok) return (checked.settings as { attributeMapping: AttributeMapping }).attributeMapping;
  const errors = checked.problems.map((line) => {
    const colon = line.indexOf(': ');
    return colon > 0 && !line.slice(0, colon).includes(' ')
      ? { in: 'body', path: line.slice(0, colon), message: line.slice(colon + 2) }
      : { in: 'body', path: 'attributeMapping', message: line };
  });
  const detail = errors.map((e) => `${e.path}: ${e.message}`).join('; ');
  throw new ProblemError(422, 'invalid-configuration', `invalid attribute mapping: ${detail}`, { extensions: { errors } });
}

/** `POST /integrations/{id}/preview`: a few directory entries mapped on a worker. */
export function registerPreviewRoute(app: ApiApp, deps: ApiDeps): void {
  app.post('/integrations/:id/preview', {
    schema: {
      tags: ['integrations'],
      operationId: 'previewMapping',
      summary: 'Map a few directory entries on a worker with the stored attribute mapping, or an unsaved one',
      description:
        'Reads the first entries of a full sync (users first for LDAP kinds) and answers them as the mapping stores them: `attributes`, with the extra attributes apart in `extra`. Nothing is stored. Entries that cannot be mapped are listed in `problems`; a mapping given in the body is checked like the settings (422 with each problem at its path).',
      security: bearer,
      params: idParams,
      body: previewRequestSchema,
      response: withProblems({ 200: previewResultSchema, 422: problemSchema, 502: problemSchema, 503: problemSchema, 504: problemSchema }),
    },
    preHandler: requireScope('sync'),
    handler: async (request) => {
      const integration = await ownIntegration(deps, request, request.params.id);
      const body = request.body ?? {};
      const attributeMapping = body.attributeMapping === undefined ? undefined : checkMapping(deps, integration.kind, integration.settings, body.attributeMapping);
      return deps.control.previewMapping(
        integration.id,
        { limit: body.limit ?? PREVIEW_DEFAULT_LIMIT, attributeMapping },
        { timeoutMs: deps.controlTimeoutMs, requestedBy: callerOf(request).actor },
      );
    },
  });
}
