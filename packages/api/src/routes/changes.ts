import { type ChangeEntry, changeHeadSchema, changePageSchema, changesQuerySchema, CURSOR_EXPIRED_PROBLEM, problemSchema } from '@dirsync/contracts';
import { changeHead, type ChangeRow, readChanges } from '@dirsync/db';
import { accountOf, requireScope } from '../auth.ts';
import type { ApiApp, ApiDeps } from '../context.ts';
import { ProblemError } from '../problems.ts';
import { bearer, withProblems } from './common.ts';

const tags = ['change feed'];

function present(row: ChangeRow): ChangeEntry {
  const base = { cursor: row.cursor, occurredAt: row.occurredAt, integrationId: row.integrationId, runId: row.runId };
  if (row.type === 'membership.changed') return { ...base, type: row.type, groupExternalId: row.externalId, added: row.added, removed: row.removed };
  const objectType = row.objectType ?? row.object?.type ?? '';
  if (row.type === 'object.deleted' || row.object === null) {
    // An object entry whose object is gone altogether (its integration deleted meanwhile) can
    // only say what happened to it last.
    return { ...base, type: 'object.deleted', objectType, externalId: row.externalId };
  }
  return { ...base, type: row.type, objectType, externalId: row.externalId, object: row.object };
}

/**
 * The account's change feed: entries after a cursor, in commit order, each object entry with the
 * object's current state; and the head, where a consumer that has just read the lists starts.
 */
export function registerChangeRoutes(app: ApiApp, deps: ApiDeps): void {
  const { db } = deps;

  app.get('/changes', {
    schema: {
      tags,
      operationId: 'listChanges',
      summary: "Changes to the account's synced objects and memberships after a cursor, oldest first",
      description:
        'Follow the feed by passing the `cursor` of each page as `after` of the next; when `hasMore` is false, poll again later. ' +
        'Object entries carry the object as stored when read (a later change already shows). ' +
        'A cursor older than the retained history answers 410 `cursor-expired` with `head`: read the lists again, then follow from that `head` (changes committed while the lists are read come again through the feed). ' +
        'A cursor never returned (beyond the head) answers 400.',
      security: bearer,
      querystring: changesQuerySchema,
      response: withProblems({ 200: changePageSchema, 410: problemSchema }),
    },
    preHandler: requireScope('read'),
    handler: async (request) => {
      const { after, limit } = request.query;
      const page = await readChanges(db, accountOf(request), after, limit);
      if ('refused' in page) {
        if (page.refused === 'expired') {
          throw new ProblemError(
            410,
            CURSOR_EXPIRED_PROBLEM,
            'entries after this cursor are no longer kept: read the synced lists again, then follow the feed from `head` (given here, taken before the lists are read)',
            { extensions: { head: page.head } },
          );
        }
        throw new ProblemError(400, 'invalid-cursor', 'this cursor was never returned by the feed (it is beyond the head)');
      }
      return { items: page.items.map(present), cursor: page.cursor, hasMore: page.hasMore };
    },
  });

  app.get('/changes/head', {
    schema: {
      tags,
      operationId: 'getChangeHead',
      summary: "The account's latest change cursor: take it, read the lists, then follow the feed from it",
      description: 'Take the head before reading the lists: a change committed while they are read is then in the feed after it too, never lost between the two.',
      security: bearer,
      response: withProblems({ 200: changeHeadSchema }),
    },
    preHandler: requireScope('read'),
    handler: async (request) => ({ cursor: (await changeHead(db, accountOf(request))).head }),
  });
}
