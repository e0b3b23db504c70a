import type { LdapConnection } from '../ldap/connection.ts';
import { type CompiledMapping, compileMapping } from '../mapping/engine.ts';
import { DestinationPolicy } from '../net/destination.ts';
import type { ConnectionReport, Cursor, FetchPage, MapResult, Provider, ProviderOptions } from '../types.ts';
import { openAdConnection, testAdConnection } from './client.ts';
import { type ActiveDirectorySettings, activeDirectorySettingsSchema } from './config.ts';
import { fetchAllWithDirSync, fetchChangesWithDirSync } from './dirsync.ts';
import { fetchAdChanges, fetchAllAdEntries, parseAdCursor } from './fetch.ts';
import { type AdEntry, mapAdEntry } from './map.ts';

export { activeDirectorySettingsSchema, adObjectTypes } from './config.ts';
export type { ActiveDirectorySettings, ActiveDirectorySettingsInput, AdObjectType } from './config.ts';
export { mapAdEntry, formatGuid, formatSid, guidBytes } from './map.ts';
export type { AdEntry } from './map.ts';
export { readDcState } from './client.ts';
export type { DcState } from './client.ts';
export { parseAdCursor, cursorRejection, adScopeFingerprint } from './fetch.ts';
export type { AdCursor } from './fetch.ts';

/**
 * Provider of kind `active_directory`: users, groups and contacts under the configured OUs.
 * External id: objectGUID. Deltas read what changed above the cursor's USN on the same DC
 * (or follow a DirSync cookie) and report tombstones and moves out of scope as deletions; a
 * cursor from another DC, a restored DC or older than the tombstone lifetime makes the run full.
 * Never writes to the directory.
 */
export class ActiveDirectoryProvider implements Provider<AdEntry> {
  readonly kind = 'active_directory';
  private readonly settings: ActiveDirectorySettings;
  // An ES private field: never serialised or shown by util.inspect, unlike a TS `private`.
  readonly #password: string | undefined;
  readonly #destinations: DestinationPolicy;
  private readonly open = new Set<LdapConnection>();
  private readonly mapping: CompiledMapping;

  constructor(settings: ActiveDirectorySettings, password: string | undefined, options: ProviderOptions = {}) {
    this.settings = settings;
    this.mapping = compileMapping(settings.attributeMapping);
    this.#password = password;
    this.#destinations = options.destinations ?? DestinationPolicy.strict();
  }

  testConnection(signal?: AbortSignal): Promise<ConnectionReport> {
    return testAdConnection(this.settings, this.#password, signal, this.#destinations);
  }

  async *fetchFull(signal: AbortSignal): AsyncIterable<FetchPage<AdEntry>> {
    const connection = await this.connect(signal);
    try {
      if (this.settings.deltaMethod === 'dirsync') yield* fetchAllWithDirSync(connection, this.settings, signal);
      else yield* fetchAllAdEntries(connection, this.settings, signal);
    } finally {
      await this.release(connection);
    }
  }

  async *fetchDelta(cursor: Cursor, signal: AbortSignal): AsyncIterable<FetchPage<AdEntry>> {
    // Rejected before connecting when the shape or scope is wrong; DC checks need the DC.
    const parsed = parseAdCursor(cursor, this.settings);
    const connection = await this.connect(signal);
    try {
      if (parsed.method === 'dirsync') yield* fetchChangesWithDirSync(connection, this.settings, parsed, signal);
      else yield* fetchAdChanges(connection, this.settings, parsed, signal);
    } finally {
      await this.release(connection);
    }
  }

  map(entry: AdEntry): MapResult {
    return mapAdEntry(entry, this.mapping);
  }

  async close(): Promise<void> {
    const all = [...this.open];
    this.open.clear();
    await Promise.all(all.map((c) => c.close()));
  }

  private async connect(signal: AbortSignal): Promise<LdapConnection> {
    const connection = await openAdConnection(this.settings, this.#password, signal, this.#destinations);
    this.open.add(connection);
    return connection;
  }

  private async release(connection: LdapConnection): Promise<void> {
    this.open.delete(connection);
    await connection.close();
  }
}

/** Validates nothing: `settings` must come from {@link activeDirectorySettingsSchema}. */
export function createActiveDirectoryProvider(settings: ActiveDirectorySettings, password: string | undefined, options: ProviderOptions = {}): ActiveDirectoryProvider {
  return new ActiveDirectoryProvider(settings, password, options);
}

/** The `active_directory` entry of the provider kind registry. */
export const activeDirectoryKind = {
  kind: 'active_directory',
  description: 'Microsoft Active Directory (objectGUID, uSNChanged or DirSync, tombstones)',
  settingsSchema: activeDirectorySettingsSchema,
  create: createActiveDirectoryProvider,
} as const;
