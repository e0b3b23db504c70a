import type { z } from 'zod';
import { ConfigError } from './errors.ts';
import { activeDirectoryKind } from './active-directory/index.ts';
import { dominoKind } from './domino/index.ts';
import { genericLdapKind } from './ldap-generic/index.ts';
import { entraIdKind } from './entra-id/index.ts';
import { formatSettingsIssues } from './settings.ts';
import type { Provider, ProviderOptions } from './types.ts';

export * from './types.ts';
export * from './errors.ts';
export * as ldap from './ldap/index.ts';
export * from './net/index.ts';
export * from './ldap-generic/index.ts';
export * from './entra-id/index.ts';
export * from './active-directory/index.ts';
export * from './domino/index.ts';
export { formatSettingsIssues } from './settings.ts';
export * from './mapping/index.ts';

/** What the registry knows about one provider kind. */
export interface ProviderKind<Settings> {
  readonly kind: string;
  readonly description: string;
  /** Validates (and fills defaults of) the settings stored for an integration of this kind. */
  readonly settingsSchema: z.ZodType<Settings>;
  /**
   * Builds a provider from validated settings and the decrypted secret (bind password, key);
   * `options.destinations` bounds where it may connect (default: the strict policy).
   */
  create(settings: Settings, secret: string | undefined, options?: ProviderOptions): Provider;
}

/** Every provider kind dirsync can sync from, by kind name (the `integrations.kind` column). */
export const providerKinds = {
  ldap: genericLdapKind as ProviderKind<z.output<typeof genericLdapKind.settingsSchema>>,
  active_directory: activeDirectoryKind as ProviderKind<z.output<typeof activeDirectoryKind.settingsSchema>>,
  domino: dominoKind as ProviderKind<z.output<typeof dominoKind.settingsSchema>>,
  entra_id: entraIdKind as ProviderKind<z.output<typeof entraIdKind.settingsSchema>>,
} as const;

/** A kind name of {@link providerKinds}. */
export type ProviderKindName = keyof typeof providerKinds;

/** True when `kind` names a registered provider kind. */
export function isProviderKind(kind: string): kind is ProviderKindName {
  return Object.hasOwn(providerKinds, kind);
}

/** Outcome of {@link validateSettings}: normalised settings, or every problem found. */
export type SettingsValidation =
  | { readonly ok: true; readonly settings: unknown }
  | { readonly ok: false; readonly problems: readonly string[] };

/**
 * Validates settings for a kind and returns them with defaults applied (what to store), or
 * every problem at once as readable lines (`users.baseDns[0]: …`).
 */
export function validateSettings(kind: string, settings: unknown): SettingsValidation {
  if (!isProviderKind(kind)) {
    return { ok: false, problems: [`unknown provider kind "${kind}" (known: ${Object.keys(providerKinds).join(', ')})`] };
  }
  const parsed = providerKinds[kind].settingsSchema.safeParse(settings);
  if (parsed.success) return { ok: true, settings: parsed.data };
  return { ok: false, problems: formatSettingsIssues(parsed.error) };
}

/**
 * Builds the provider for an integration from its stored settings JSON and decrypted secret.
 * `options.destinations` is where it may connect: the strict policy (public addresses only)
 * unless the platform passes its own. Throws {@link ConfigError} listing every problem when the
 * settings are invalid.
 */
export function createProvider(kind: string, settings: unknown, secret: string | undefined, options: ProviderOptions = {}): Provider {
  if (!isProviderKind(kind)) {
    throw new ConfigError(`unknown provider kind "${kind}" (known: ${Object.keys(providerKinds).join(', ')})`);
  }
  // Each kind checks its own settings: widened so one call covers every kind of the registry.
  const entry: ProviderKind<unknown> = providerKinds[kind];
  const parsed = entry.settingsSchema.safeParse(settings);
  if (!parsed.success) {
    throw new ConfigError(`invalid ${kind} settings: ${formatSettingsIssues(parsed.error).join('; ')}`);
  }
  return entry.create(parsed.data, secret, options);
}
