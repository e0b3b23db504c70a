import {
  acquireRotationLease,
  activateCredential,
  addPendingCredential,
  type Connector,
  type ConnectorCredentialWithKey,
  type Db,
  type KeyRing,
  listRetiredCredentials,
  markCredentialRemoved,
  openPendingCredential,
  recordAudit,
  recordRotationOutcome,
  releaseRotationLease,
  requireConnector,
  setCredentialGraphKeyId,
  withCurrentCredential,
} from '@dirsync/db';
import {
  ApplicationKeys,
  type DestinationPolicy,
  type EntraCredential,
  EntraTokenCache,
  generateCertificate,
  GraphClient,
  type GraphConnectionSettings,
  ProviderError,
  UnavailableError,
} from '@dirsync/providers';
import { classifyFailure } from '../failure.ts';

/** Options of {@link rotateConnectorCredential}. */
export interface RotationOptions {
  readonly db: Db;
  readonly keyRing: KeyRing;
  readonly connectorId: string;
  /** The scheduled slot this rotation stands for; a second rotation for it does nothing. */
  readonly slot?: Date | null | undefined;
  /** Who asked (audit log): `scheduler`, `cli`, a user. */
  readonly actor: string;
  readonly signal?: AbortSignal | undefined;
  /** Token cache for the current credential (default: a fresh one per rotation). */
  readonly tokenCache?: EntraTokenCache | undefined;
  /** Waits between Graph retries (tests shorten them). */
  readonly sleep?: ((ms: number, signal: AbortSignal) => Promise<void>) | undefined;
  /** Where Graph requests may connect (default: the strict policy). */
  readonly destinations?: DestinationPolicy | undefined;
  /** How long the rotation holds its lease (default 10 minutes). */
  readonly leaseMs?: number | undefined;
}

/** What a rotation did. */
export type RotationResult =
  | {
      readonly status: 'rotated';
      readonly connectorId: string;
      readonly credentialId: string;
      readonly thumbprint: string;
      readonly keyId: string;
      readonly notAfter: Date;
      /** Thumbprints of old certificates removed from the app registration. */
      readonly removed: readonly string[];
      /** Old certificates that could not be removed yet (the next rotation tries again). */
      readonly removalErrors: readonly string[];
    }
  | { readonly status: 'skipped'; readonly connectorId: string; readonly reason: string };

/** Another rotation of the same connector holds the lease: try again later. */
export class RotationBusyError extends UnavailableError {
  constructor(connector: string) {
    super(`another rotation of connector "${connector}" is running`);
  }
}

function homeSettings(connector: Connector): GraphConnectionSettings {
  return {
    tenantId: connector.homeTenantId,
    authorityHost: connector.authorityHost,
    graphBaseUrl: connector.graphBaseUrl,
    ...(connector.tlsCaPem === null ? {} : { caPem: connector.tlsCaPem }),
    retry: { baseDelayMs: 1_000, maxDelayMs: 30_000, maxWaitMs: 10 * 60_000, maxAttempts: 4 },
    requestTimeoutMs: 60_000,
  };
}

function certificateOf(connector: Connector, credential: ConnectorCredentialWithKey): EntraCredential {
  return { kind: 'certificate', clientId: connector.clientId, certificatePem: credential.certificatePem, privateKeyPem: credential.privateKeyPem };
}

/**
 * The daily credential rotation of a connector, safe to run twice and to resume after a crash:
 *
 * 1. a new RSA-2048 certificate is generated and stored (private key encrypted) as pending — or
 *    the pending one of an interrupted attempt is taken up again;
 * 2. it is added to the app registration with Graph `addKey`, the proof signed by the current
 *    key — unless the app already lists it;
 * 3. a token is acquired with it: only a key Entra ID accepts becomes current;
 * 4. it becomes current (token acquisition switches to it), the current one becomes previous, the
 *    previous one retired — the app keeps two valid keys and is never left without one;
 * 5. retired certificates are removed from the app with `removeKey`, signed by the new key.
 *
 * Every outcome is audited and recorded on the connector; a failure keeps the current key in use
 * (it works until it expires) and is rethrown for the job to be retried.
 */
export async function rotateConnectorCredential(options: RotationOptions): Promise<RotationResult> {
  const { db, keyRing } = options;
  const signal = options.signal ?? new AbortController().signal;
  const slot = options.slot ?? null;
  let connector = await requireConnector(db, options.connectorId);
  const alreadyDone = (c: Connector) => slot !== null && c.rotatedSlot !== null && c.rotatedSlot.getTime() >= slot.getTime();
  if (alreadyDone(connector)) {
    return { status: 'skipped', connectorId: connector.id, reason: `already rotated for the slot of ${slot?.toISOString()}` };
  }
  if (!(await acquireRotationLease(db, connector.id, options.leaseMs ?? 10 * 60_000))) throw new RotationBusyError(connector.name);
  try {
    // Re-read under the lease: a rotation that just finished may have covered this slot.
    connector = await requireConnector(db, connector.id);
    if (alreadyDone(connector)) {
      return { status: 'skipped', connectorId: connector.id, reason: `already rotated for the slot of ${slot?.toISOString()}` };
    }
    const result = await withCurrentCredential(db, keyRing, connector.id, (current) => rotateWith(options, connector, current, slot, signal));
    await recordRotationOutcome(db, connector.id, { status: 'succeeded', slot });
    return result;
  } catch (error) {
    const message = classifyFailure(error).message;
    await recordRotationOutcome(db, connector.id, { status: 'failed', error: message }).catch(() => undefined);
    await recordAudit(db, {
      actor: options.actor,
      action: 'connector.credential.rotation_failed',
      details: { connectorId: connector.id, connector: connector.name, error: message, ...(slot ? { slot: slot.toISOString() } : {}) },
    }).catch(() => undefined);
    throw error;
  } finally {
    await releaseRotationLease(db, connector.id).catch(() => undefined);
  }
}

async function rotateWith(
  options: RotationOptions,
  connector: Connector,
  current: ConnectorCredentialWithKey,
  slot: Date | null,
  signal: AbortSignal,
): Promise<RotationResult> {
  const { db, keyRing } = options;
  const settings = homeSettings(connector);
  const client = new GraphClient(settings, certificateOf(connector, current), { tokenCache: options.tokenCache ?? new EntraTokenCache(4), sleep: options.sleep, destinations: options.destinations });
  try {
    const keys = new ApplicationKeys(client, connector.applicationObjectId);
    let pending = await openPendingCredential(db, keyRing, connector.id);
    if (!pending) {
      const generated = await generateCertificate({ subject: `dirsync connector ${connector.name}`, validityDays: connector.certificateValidityDays });
      await addPendingCredential(db, keyRing, connector.id, generated, slot);
      pending = await openPendingCredential(db, keyRing, connector.id);
      if (!pending) throw new Error('the new certificate was not stored');
    }
    const listed = await keys.list(signal);
    let keyId = listed.find((k) => k.thumbprint === pending.thumbprint)?.keyId;
    if (keyId === undefined) keyId = (await keys.add(pending.certificatePem, current, signal)).keyId;
    await setCredentialGraphKeyId(db, pending.id, keyId);

    // Entra ID must accept the new key before anything switches to it.
    const probe = new GraphClient(settings, certificateOf(connector, pending), { tokenCache: new EntraTokenCache(1), sleep: options.sleep, destinations: options.destinations });
    try {
      await probe.token(signal);
    } catch (error) {
      const why = error instanceof ProviderError ? error.message : String(error);
      throw new UnavailableError(`the new certificate ${pending.thumbprint} was added but Entra ID does not accept it yet: ${why}`);
    } finally {
      await probe.close();
    }

    await activateCredential(db, connector.id, pending.id);
    await recordAudit(db, {
      actor: options.actor,
      action: 'connector.credential.rotated',
      details: {
        connectorId: connector.id,
        connector: connector.name,
        thumbprint: pending.thumbprint,
        keyId,
        previousThumbprint: current.thumbprint,
        notAfter: pending.notAfter.toISOString(),
        ...(slot ? { slot: slot.toISOString() } : {}),
      },
    });
    const removal = await removeRetired(options, connector, new GraphClient(settings, certificateOf(connector, pending), { tokenCache: new EntraTokenCache(1), sleep: options.sleep, destinations: options.destinations }), pending, signal);
    return {
      status: 'rotated',
      connectorId: connector.id,
      credentialId: pending.id,
      thumbprint: pending.thumbprint,
      keyId,
      notAfter: pending.notAfter,
      ...removal,
    };
  } finally {
    await client.close();
  }
}

/** Removes retired certificates from the app registration, proving possession with the new key. */
async function removeRetired(
  options: RotationOptions,
  connector: Connector,
  client: GraphClient,
  signer: ConnectorCredentialWithKey,
  signal: AbortSignal,
): Promise<{ removed: string[]; removalErrors: string[] }> {
  const { db } = options;
  const removed: string[] = [];
  const removalErrors: string[] = [];
  try {
    // Also those a failed removal left behind in an earlier rotation.
    const retired = await listRetiredCredentials(db, connector.id);
    if (retired.length === 0) return { removed, removalErrors };
    const keys = new ApplicationKeys(client, connector.applicationObjectId);
    const listed = await keys.list(signal);
    for (const credential of retired) {
      const onApp = listed.find((k) => k.thumbprint === credential.thumbprint);
      try {
        if (onApp) await keys.remove(onApp.keyId, signer, signal);
        await markCredentialRemoved(db, credential.id);
        removed.push(credential.thumbprint);
        await recordAudit(db, {
          actor: options.actor,
          action: 'connector.credential.removed',
          details: { connectorId: connector.id, connector: connector.name, thumbprint: credential.thumbprint, ...(onApp ? { keyId: onApp.keyId } : { alreadyGone: true }) },
        });
      } catch (error) {
        removalErrors.push(`${credential.thumbprint}: ${classifyFailure(error).message}`);
      }
    }
  } catch (error) {
    removalErrors.push(classifyFailure(error).message);
  } finally {
    await client.close();
  }
  if (removalErrors.length > 0) {
    await recordAudit(db, { actor: options.actor, action: 'connector.credential.remove_failed', details: { connectorId: connector.id, connector: connector.name, errors: removalErrors } });
  }
  return { removed, removalErrors };
}
