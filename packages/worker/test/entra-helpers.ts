import {
  acceptConsentRedirect,
  close,
  connect,
  type ConsentOutcome,
  type Connector,
  createAccount,
  createConnector,
  createConsentRequest,
  createKeyRing,
  type Db,
  generateSecretKey,
  type KeyRing,
} from '@dirsync/db';
import { verifyTenantConsent } from '../src/entra/index.ts';
import {
  createTestDatabase,
  type EmulatedApplication,
  type EmulatedTenantDirectory,
  type EntraEmulator,
  type EntraEmulatorOptions,
  followEmulatorPage,
  registerEmulatedConnectorApp,
  startEntraEmulator,
  type TestDatabase,
  testDestinations,
} from '@dirsync/testkit';

/** Where the emulated admin-consent page sends administrators back. */
export const redirectUri = 'https://dirsync.test/entra/consent';

/**
 * An Entra emulator with the platform's home tenant and connector app (certificate registered),
 * a fresh database holding that connector, and the secret key ring: what Entra tests share.
 */
export interface EntraWorld {
  readonly emulator: EntraEmulator;
  readonly home: EmulatedTenantDirectory;
  readonly app: EmulatedApplication;
  readonly db: Db;
  readonly ring: KeyRing;
  readonly accountId: string;
  readonly connector: Connector;
  /** A customer tenant whose administrator granted consent through the real consent flow. */
  consentedTenant(): Promise<EmulatedTenantDirectory>;
  /**
   * Runs the admin-consent flow for a tenant and an account (default: the world's): URL →
   * emulated consent page → redirect handled → administrator's sign-in → code redeemed, id_token
   * and token checked against the emulator.
   */
  grantConsent(tenantId: string, accountId?: string): Promise<ConsentOutcome | 'refused'>;
  close(): Promise<void>;
}

/** Starts an {@link EntraWorld}. */
export async function startEntraWorld(label: string, emulatorOptions: EntraEmulatorOptions = {}): Promise<EntraWorld> {
  const emulator = await startEntraEmulator(emulatorOptions);
  let database: TestDatabase | undefined;
  let db: Db | undefined;
  try {
    database = await createTestDatabase(label);
    db = connect(database.url, { max: 6 });
    const ring = createKeyRing({ current: generateSecretKey() });
    const { home, app, certificate, connector: registered } = await registerEmulatedConnectorApp(emulator, { redirectUri, homeDomain: 'platform.onmicrosoft.com' });
    const connector = await createConnector(db, ring, { name: 'dirsync', description: 'Directory sync connector', ...registered }, certificate);
    const accountId = (await createAccount(db, { name: `entra-${label}` })).id;
    const handle = db;
    const grantConsent = async (tenantId: string, account = accountId) => {
      const consent = await createConsentRequest(handle, ring, { accountId: account, connectorId: connector.id, tenantId });
      const location = await followEmulatorPage(emulator, consent.url);
      const consented = await acceptConsentRedirect(handle, ring, location.searchParams);
      if (consented.kind !== 'sign_in') return 'refused' as const;
      // The emulator's signed-in user (default: a Global Administrator of the tenant) answers.
      const signedIn = await followEmulatorPage(emulator, consented.url);
      const redirect = await acceptConsentRedirect(handle, ring, signedIn.searchParams);
      if (redirect.kind !== 'verify') return 'refused' as const;
      return verifyTenantConsent({ db: handle, keyRing: ring, destinations: testDestinations }, redirect.request.nonce);
    };
    const drop = database;
    return {
      emulator,
      home,
      app,
      db,
      ring,
      accountId,
      connector,
      grantConsent,
      async consentedTenant() {
        const tenant = emulator.createTenant();
        await grantConsent(tenant.tenantId);
        return tenant;
      },
      async close() {
        await close(handle);
        await drop.drop();
        await emulator.close();
      },
    };
  } catch (error) {
    if (db) await close(db);
    await database?.drop();
    await emulator.close();
    throw error;
  }
}
