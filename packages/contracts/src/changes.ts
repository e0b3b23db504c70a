import { z } from 'zod';
import { directoryObjectSchema } from './api.ts';

/**
 * The change feed (`GET /v1/changes`): every object created, updated, restored or deleted and
 * every membership change of an account's integrations, in the order they were committed.
 */

/** Largest page of the feed. */
export const CHANGES_MAX_LIMIT = 1000;
/** Page size when none is asked for. */
export const CHANGES_DEFAULT_LIMIT = 100;

/**
 * A position in an account's feed: opaque to consumers (a decimal sequence number inside, dense
 * and increasing per account). `"0"` is before the first change.
 */
export const changeCursorSchema = z
  .string()
  .regex(/^(0|[1-9]\d{0,18})$/, 'a cursor this feed returned')
  // Checks run on after a failed one: BigInt must only see digits.
  .refine((value) => !/^\d+$/.test(value) || BigInt(value) <= 9_223_372_036_854_775_807n, 'a cursor this feed returned')
  .describe('opaque feed position; "0" is before the first change');
/** A feed cursor. */
export type ChangeCursor = z.infer<typeof changeCursorSchema>;

/** Query of `GET /v1/changes`. */
export const changesQuerySchema = z.object({
  after: changeCursorSchema.default('0').describe('return entries after this cursor (the `cursor` of the previous page, or the head)'),
  limit: z.coerce.number().int().min(1).max(CHANGES_MAX_LIMIT).default(CHANGES_DEFAULT_LIMIT),
});
/** Query of `GET /v1/changes`, as sent. */
export type ChangesQuery = z.input<typeof changesQuerySchema>;

const isoDate = z.iso.datetime({ offset: true }).describe('RFC 3339 date-time');

/** A synced object as stored: the API's directory object, read when the feed is read. */
export const changedObjectSchema = directoryObjectSchema
  .describe(
    'the object as stored when the feed is read, not a copy taken at the change: a later change shows here already (an object deleted since reads deleted, with its last attributes)',
  );
/** A synced object as the feed shows it. */
export type ChangedObject = z.infer<typeof changedObjectSchema>;

const entryBase = {
  cursor: changeCursorSchema,
  occurredAt: isoDate.describe('when the change was committed'),
  integrationId: z.uuid(),
  runId: z.uuid().nullable().describe('the sync run that made the change'),
};

/** Types of feed entries. */
export const changeEntryTypes = ['object.created', 'object.updated', 'object.restored', 'object.deleted', 'membership.changed'] as const;
/** A feed entry's type. */
export type ChangeEntryType = (typeof changeEntryTypes)[number];

/** An object created, updated or restored (a soft-deleted object that came back). */
export const objectChangeEntrySchema = z.object({
  ...entryBase,
  type: z.enum(['object.created', 'object.updated', 'object.restored']),
  objectType: z.string(),
  externalId: z.string(),
  object: changedObjectSchema,
});

/** An object deleted (soft-deleted: the directory lists read it with `deleted: true`). */
export const objectDeletedEntrySchema = z.object({
  ...entryBase,
  type: z.literal('object.deleted'),
  objectType: z.string(),
  externalId: z.string(),
});

/**
 * Edges of one group added and removed by one write (a first sync of a 100-member group is one
 * entry). Member ids are external ids, in no particular order; an edge of a deleted group or
 * member is removed here too.
 */
export const membershipChangedEntrySchema = z.object({
  ...entryBase,
  type: z.literal('membership.changed'),
  groupExternalId: z.string(),
  added: z.array(z.string()),
  removed: z.array(z.string()),
});

/** One entry of the change feed. */
export const changeEntrySchema = z.discriminatedUnion('type', [objectChangeEntrySchema, objectDeletedEntrySchema, membershipChangedEntrySchema]);
/** One entry of the change feed. */
export type ChangeEntry = z.infer<typeof changeEntrySchema>;

/** A page of the feed (`GET /v1/changes`). */
export const changePageSchema = z.object({
  items: z
    .array(changeEntrySchema)
    .describe('entries in cursor order; the entries of one write come grouped by what they did (creations, updates, … of one object type, then one per group)'),
  cursor: changeCursorSchema.describe('cursor of the last item, or `after` when there is none: pass it as `after` next'),
  hasMore: z.boolean().describe('more entries follow now; when false, poll again later'),
});
/** A page of the feed. */
export type ChangePage = z.infer<typeof changePageSchema>;

/** `GET /v1/changes/head`: where a new consumer starts following, after reading the lists once. */
export const changeHeadSchema = z.object({ cursor: changeCursorSchema.describe('the latest cursor') });
/** The feed's head. */
export type ChangeHead = z.infer<typeof changeHeadSchema>;

/**
 * Problem type (last path segment) of the 410 answered when `after` is older than the retained
 * history: the consumer missed entries, must read the lists again and then follow from `head`
 * (an extension member of the problem).
 */
export const CURSOR_EXPIRED_PROBLEM = 'cursor-expired';
