import type { DestinationPolicy } from './net/destination.ts';
/** A JSON value as stored in PostgreSQL `jsonb`. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** The kinds of directory object dirsync keeps. */
export type ObjectType = 'user' | 'group' | 'contact';

/**
 * A reference from a group to one of its members. LDAP directories name members by DN, which the
 * pipeline resolves to the member's immutable external id; Graph names them by id directly.
 */
export interface MemberRef {
  readonly by: 'externalId' | 'dn';
  readonly value: string;
}

/** A directory object in the shape every provider maps to. */
export interface CanonicalObject {
  /** Immutable id from the source (entryUUID, objectGUID, dominoUNID, Graph id). The only key. */
  readonly externalId: string;
  readonly type: ObjectType;
  /**
   * Current locator (LDAP DN, normalised to lower case) used only to resolve DN member references;
   * it changes on rename or move and never identifies the object.
   */
  readonly dn?: string;
  /** Canonical attributes; they alone decide whether the object changed (content hash). */
  readonly attributes: { readonly [key: string]: JsonValue };
  /** For groups: the complete member list. Absent when the source did not report membership. */
  readonly members?: readonly MemberRef[];
  /**
   * The groups this object is a direct member of, when the source reports them with the object
   * (AD `memberOf`, read by deltas). The pipeline adds the edges from synced groups when the
   * object comes into scope (created, moved in or restored), since those groups did not change
   * and are not read again. Not part of the content hash.
   */
  readonly memberOf?: readonly MemberRef[];
  /**
   * The objects whose `manager` is this object, when the source reports them with it (AD
   * `directReports`, read by deltas). When the object comes into scope or is restored, the
   * pipeline sets their `manager` to it: their own entries did not change, so they are not read
   * again. Not part of the content hash.
   */
  readonly directReports?: readonly MemberRef[];
  /**
   * Set when the source sent only some attributes (a Graph delta record carries "at least the
   * changed properties"): the pipeline merges `attributes` over the stored ones, an attribute
   * absent here keeps its stored value and one named in `cleared` is removed. An object not stored
   * yet is stored with what it carries. Absent: `attributes` is the whole object (LDAP, full syncs).
   */
  readonly partial?: { readonly cleared: readonly string[] };
  /**
   * The fetch already handed this object on earlier in the same run (Graph may list an object
   * more than once in a round): the pipeline writes it again if it differs but counts it once.
   */
  readonly repeat?: boolean;
}

/** Membership changes reported incrementally by a source (Graph `members@delta`). */
export interface MemberDelta {
  readonly groupExternalId: string;
  readonly added: readonly MemberRef[];
  readonly removed: readonly MemberRef[];
}

/** Provider-specific position from which the next delta continues. Stored as JSON. */
export type Cursor = { readonly [key: string]: JsonValue };

/** One page of a fetch. Pages are streamed; the last page of a successful fetch carries `cursor`. */
export interface FetchPage<S> {
  /** Source entries, mapped by {@link Provider.map}. */
  readonly entries: readonly S[];
  /** External ids the source reports as deleted (delta only; never inferred from absence). */
  readonly deletions?: readonly string[];
  /** Incremental membership changes (delta only). */
  readonly memberDeltas?: readonly MemberDelta[];
  /** Set on the final page: where the next delta starts. */
  readonly cursor?: Cursor;
}

/** The outcome of mapping one source entry: one bad record becomes an issue, not a failed run. */
export type MapResult =
  | { readonly ok: true; readonly object: CanonicalObject }
  | { readonly ok: false; readonly externalId?: string; readonly dn?: string; readonly reason: string };

/** One line of a Test Connection checklist. */
export interface ConnectionCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
  /** A passed check that still deserves attention (for example: the account can write). */
  readonly warning?: boolean;
}

/** Structured Test Connection result, printed by the CLI as a checklist. */
export interface ConnectionReport {
  readonly ok: boolean;
  readonly checks: readonly ConnectionCheck[];
}

/**
 * What every directory provider offers the pipeline. Providers only talk to directories; they
 * never touch the database.
 */
export interface Provider<S = unknown> {
  readonly kind: string;
  testConnection(signal?: AbortSignal): Promise<ConnectionReport>;
  /** Every in-scope object. Completing without throwing means the fetch was complete. */
  fetchFull(signal: AbortSignal): AsyncIterable<FetchPage<S>>;
  /**
   * Changes since `cursor`. Throws {@link CursorRejectedError} when the cursor cannot be used,
   * which makes the pipeline run a full sync instead.
   */
  fetchDelta(cursor: Cursor, signal: AbortSignal): AsyncIterable<FetchPage<S>>;
  /** Pure: source entry → canonical object. */
  map(entry: S): MapResult;
  close(): Promise<void>;
}

/** What the platform decides for every provider it builds, beside settings and secret. */
export interface ProviderOptions {
  /**
   * Where the provider may open connections (checked on every resolved address at connect
   * time). Default: `DestinationPolicy.strict()`, public addresses only.
   */
  readonly destinations?: DestinationPolicy | undefined;
}
