import { generateCertificate, type GeneratedCertificate } from '@dirsync/providers';
import type { EmulatedApplication } from './applications.ts';
import type { EmulatedTenantDirectory } from './directory.ts';
import type { EntraEmulator, NewEmulatedApplication } from './server.ts';

/**
 * What an operator records of a connector registered on the emulator: the fields of a new
 * connector besides its name and description (spread into `createConnector`'s input).
 */
export interface EmulatedConnectorFields {
  readonly clientId: string;
  readonly applicationObjectId: string;
  readonly homeTenantId: string;
  readonly redirectUri: string;
  readonly authorityHost: string;
  readonly graphBaseUrl: string;
  readonly tlsCaPem: string;
  /** The key id the registration gave the certificate, as the operator copies it: rotations remove keys by id. */
  readonly graphKeyId: string | null;
}

/** Options of {@link registerEmulatedConnectorApp}. */
export interface EmulatedConnectorAppOptions {
  /** Where the admin-consent page sends administrators back (the app's one redirect URI). */
  readonly redirectUri: string;
  /** Subject of the generated certificate. */
  readonly subject?: string;
  /** A home tenant that exists already; default a new one named `homeDomain`. */
  readonly homeTenantId?: string;
  /** Domain of the new home tenant (default `dirsync-platform.onmicrosoft.com`). */
  readonly homeDomain?: string;
  /** Default `dirsync directory sync`. */
  readonly displayName?: string;
  readonly groupMembershipClaims?: NewEmulatedApplication['groupMembershipClaims'];
}

/** A connector's app registration on the emulator, with what the database needs of it. */
export interface EmulatedConnectorApp {
  readonly home: EmulatedTenantDirectory;
  readonly app: EmulatedApplication;
  /** The certificate uploaded to the app; its private key is the connector's credential. */
  readonly certificate: GeneratedCertificate;
  readonly connector: EmulatedConnectorFields;
}

/**
 * Registers a connector's app on the emulator as the platform operator does: a certificate
 * generated for it (valid 30 days) and uploaded at registration, the redirect URI set. Returns
 * the fields to create the connector with, pointing at the emulator (its authority, Graph and
 * CA) and naming the certificate's key id.
 */
export async function registerEmulatedConnectorApp(emulator: EntraEmulator, options: EmulatedConnectorAppOptions): Promise<EmulatedConnectorApp> {
  const home = options.homeTenantId === undefined ? emulator.createTenant({ domain: options.homeDomain ?? 'dirsync-platform.onmicrosoft.com' }) : emulator.tenant(options.homeTenantId);
  const certificate = await generateCertificate({ subject: options.subject ?? 'dirsync connector', validityDays: 30 });
  const app = emulator.registerApplication({
    homeTenantId: home.tenantId,
    displayName: options.displayName ?? 'dirsync directory sync',
    certificates: [certificate.certificatePem],
    redirectUris: [options.redirectUri],
    ...(options.groupMembershipClaims === undefined ? {} : { groupMembershipClaims: options.groupMembershipClaims }),
  });
  return {
    home,
    app,
    certificate,
    connector: {
      clientId: app.appId,
      applicationObjectId: app.objectId,
      homeTenantId: home.tenantId,
      redirectUri: options.redirectUri,
      authorityHost: emulator.authorityHost,
      graphBaseUrl: emulator.graphBaseUrl,
      tlsCaPem: emulator.caPem,
      graphKeyId: app.keyCredentials[0]?.keyId ?? null,
    },
  };
}
