import type { LdapConnection } from '../ldap/connection.ts';
import { type CompiledMapping, compileMapping } from '../mapping/engine.ts';
import { DestinationPolicy } from '../net/destination.ts';
import type { ConnectionReport, Cursor, FetchPage, MapResult, Provider, ProviderOptions } from '../types.ts';
import { openDominoConnection, testDominoConnection } from './client.ts';
import { type DominoSettings, dominoSettingsSchema } from './config.ts';
import { fetchAllDominoEntries, fetchDominoChanges, parseDominoCursor } from './fetch.ts';
import { type DominoEntry, mapDominoEntry } from './map.ts';

export { dominoSettingsSchema } from './config.ts';
export type { DominoSettings, DominoSettingsInput } from './config.ts';
export { mapDominoEntry, dominoPersonAttributes, dominoGroupAttributes } from './map.ts';
export type { DominoEntry } from './map.ts';
export { DominoReader } from './client.ts';
export { parseDominoCursor, dominoScopeFingerprint } from './fetch.ts';
export type { DominoCursor } from './fetch.ts';

/**
 * Provider of kind `domino`: people and groups of an HCL Domino Directory over LDAP. External
 * id: dominoUNID. Reads around the server's answer cap (paging when offered, split searches
 * otherwise); deltas by modifyTimestamp when the server shows it, else a full read whose
 * unchanged entries cost no writes; deletions by full syncs. Never writes to the directory.
 */
export class DominoProvider implements Provider<DominoEntry> {
  readonly kind = 'domino';
  private readonly settings: DominoSettings;
  // An ES private field: never serialised or shown by util.inspect, unlike a TS `private`.
  readonly #password: string | undefined;
  readonly #destinations: DestinationPolicy;
  private readonly open = new Set<LdapConnection>();
  private readonly mapping: CompiledMapping;

  constructor(settings: DominoSettings, password: string | undefined, options: ProviderOptions = {}) {
    this.settings = settings;
    this.mapping = compileMapping(settings.attributeMapping);
    this.#password = password;
    this.#destinations = options.destinations ?? DestinationPolicy.strict();
  }

  testConnection(signal?: AbortSignal): Promise<ConnectionReport> {
    return testDominoConnection(this.settings, this.#password, signal, this.#destinations);
  }

  async *fetchFull(signal: AbortSignal): AsyncIterable<FetchPage<DominoEntry>> {
    const connection = await this.connect(signal);
    try {
      yield* fetchAllDominoEntries(connection, this.settings, signal);
    } finally {
      await this.release(connection);
    }
  }

  async *fetchDelta(cursor: Cursor, signal: AbortSignal): AsyncIterable<FetchPage<DominoEntry>> {
    // Rejected before connecting: an unusable cursor must not cost a round trip.
    const parsed = parseDominoCursor(cursor, this.settings);
    const connection = await this.connect(signal);
    try {
      yield* fetchDominoChanges(connection, this.settings, parsed, signal);
    } finally {
      await this.release(connection);
    }
  }

  map(entry: DominoEntry): MapResult {
    return mapDominoEntry(entry, this.settings.groups.memberAttributes, this.mapping);
  }

  async close(): Promise<void> {
    const all = [...this.open];
    this.open.clear();
    await Promise.all(all.map((c) => c.close()));
  }

  private async connect(signal: AbortSignal): Promise<LdapConnection> {
    const connection = await openDominoConnection(this.settings, this.#password, signal, this.#destinations);
    this.open.add(connection);
    return connection;
  }

  private async release(connection: LdapConnection): Promise<void> {
    this.open.delete(connection);
    await connection.close();
  }
}

/** Validates nothing: `settings` must come from {@link dominoSettingsSchema}. */
export function createDominoProvider(settings: DominoSettings, password: string | undefined, options: ProviderOptions = {}): DominoProvider {
  return new DominoProvider(settings, password, options);
}

/** The `domino` entry of the provider kind registry. */
export const dominoKind = {
  kind: 'domino',
  description: 'HCL Domino Directory over LDAP (dominoUNID, split searches under a size limit, modifyTimestamp or hash deltas)',
  settingsSchema: dominoSettingsSchema,
  create: createDominoProvider,
} as const;
