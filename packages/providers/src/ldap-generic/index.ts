import type { LdapConnection } from '../ldap/connection.ts';
import { compileMapping } from '../mapping/engine.ts';
import { DestinationPolicy } from '../net/destination.ts';
import type { ConnectionReport, Cursor, FetchPage, MapResult, Provider, ProviderOptions } from '../types.ts';
import { openConnection, testGenericLdapConnection } from './client.ts';
import { type GenericLdapSettings, genericLdapSettingsSchema } from './config.ts';
import { fetchAllEntries, fetchChangedEntries, parseCursor } from './fetch.ts';
import { type GenericLdapEntry, type GenericLdapMapOptions, mapGenericLdapEntry } from './map.ts';

export { genericLdapSettingsSchema, effectiveTlsMode } from './config.ts';
export type { GenericLdapSettings, GenericLdapSettingsInput } from './config.ts';
export { mapGenericLdapEntry, userAttributes, groupAttributes } from './map.ts';
export type { GenericLdapEntry, GenericLdapMapOptions } from './map.ts';
export { parseCursor, scopeFingerprint } from './fetch.ts';
export type { GenericLdapCursor } from './fetch.ts';

/**
 * Provider of kind `ldap`: OpenLDAP and other RFC 4512 directories. External id `entryUUID`;
 * delta by `modifyTimestamp` high-water mark; deletions by full syncs only. One connection per
 * fetch, closed when the fetch ends (or by {@link GenericLdapProvider.close}).
 */
export class GenericLdapProvider implements Provider<GenericLdapEntry> {
  readonly kind = 'ldap';
  private readonly settings: GenericLdapSettings;
  // An ES private field: never serialised or shown by util.inspect, unlike a TS `private`.
  readonly #password: string | undefined;
  readonly #destinations: DestinationPolicy;
  private readonly mapOptions: GenericLdapMapOptions;
  private readonly open = new Set<LdapConnection>();

  constructor(settings: GenericLdapSettings, password: string | undefined, options: ProviderOptions = {}) {
    this.settings = settings;
    this.#password = password;
    this.#destinations = options.destinations ?? DestinationPolicy.strict();
    this.mapOptions = { memberAttributes: settings.groups.memberAttributes, mapping: compileMapping(settings.attributeMapping) };
  }

  testConnection(signal?: AbortSignal): Promise<ConnectionReport> {
    return testGenericLdapConnection(this.settings, this.#password, signal, this.#destinations);
  }

  async *fetchFull(signal: AbortSignal): AsyncIterable<FetchPage<GenericLdapEntry>> {
    const connection = await this.connect(signal);
    try {
      yield* fetchAllEntries(connection, this.settings, signal);
    } finally {
      await this.release(connection);
    }
  }

  async *fetchDelta(cursor: Cursor, signal: AbortSignal): AsyncIterable<FetchPage<GenericLdapEntry>> {
    // Rejected before connecting: an unusable cursor must not cost a round trip.
    const { highWaterMs } = parseCursor(cursor, this.settings);
    const connection = await this.connect(signal);
    try {
      yield* fetchChangedEntries(connection, this.settings, highWaterMs, signal);
    } finally {
      await this.release(connection);
    }
  }

  map(entry: GenericLdapEntry): MapResult {
    return mapGenericLdapEntry(entry, this.mapOptions);
  }

  async close(): Promise<void> {
    const all = [...this.open];
    this.open.clear();
    await Promise.all(all.map((c) => c.close()));
  }

  private async connect(signal: AbortSignal): Promise<LdapConnection> {
    const connection = await openConnection(this.settings, this.#password, signal, this.#destinations);
    this.open.add(connection);
    return connection;
  }

  private async release(connection: LdapConnection): Promise<void> {
    this.open.delete(connection);
    await connection.close();
  }
}

/** Validates nothing: `settings` must come from {@link genericLdapSettingsSchema}. */
export function createGenericLdapProvider(settings: GenericLdapSettings, password: string | undefined, options: ProviderOptions = {}): GenericLdapProvider {
  return new GenericLdapProvider(settings, password, options);
}

/** The `ldap` entry of the provider kind registry. */
export const genericLdapKind = {
  kind: 'ldap',
  description: 'OpenLDAP and other RFC 4512 directories (entryUUID, modifyTimestamp)',
  settingsSchema: genericLdapSettingsSchema,
  create: createGenericLdapProvider,
} as const;
