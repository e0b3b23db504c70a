import { setTimeout as delay } from 'node:timers/promises';
import {
  acquireRotationLease,
  activateCredential,
  addPendingCredential,
  type Connector,
  type ConnectorCredentialWithKey,
  type Db,
  type KeyRing,
  listRetiredCredentials,
  markCredentialAbandoned,
  markCredentialRemoved,
  openPendingCredential,
  recordAudit,
  recordRotationOutcome,
  releaseRotationLease,
  requireConnector,
  setCredentialGraphKeyId,
  withCurrentAndPreviousCredentials,
} from '@dirsync/db';
import {
  ApplicationKeys,
  type DestinationPolicy,
  EntraAuthError,
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
  /**
   * How long the job waits for Entra ID to accept the new key before failing retryably (default
   * 2 minutes; the next attempt resumes with the same key).
   */
  readonly acceptanceWaitMs?: number | undefined;
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
    // addKey/removeKey carry a proof valid ten minutes from a minute ago: a request throttled for
    // longer would be retried with an expired proof; the job retries later with a fresh one.
    retry: { baseDelayMs: 1_000, maxDelayMs: 30_000, maxWaitMs: 5 * 60_000, maxAttempts: 4 },
    requestTimeoutMs: 60_000,
  };
}

function certificateOf(connector: Connector, credential: ConnectorCredentialWithKey): EntraCredential {
  return { kind: 'certificate', clientId: connector.clientId, certificatePem: credential.certificatePem, privateKeyPem: credential.privateKeyPem };
}

/**
 * The daily credential rotation of a connector, safe to run twice and to resume after a crash,
 * with no Graph permission at all: an app rolling its own keys needs none (application-addkey.md,
 * application-removekey.md), and nothing here reads the app registration. The key ids `addKey`
 * returns are stored on the credentials and are all `removeKey` needs.
 *
 * 1. a new RSA-2048 certificate is generated and stored (private key encrypted) as pending — or
 *    the pending one of an interrupted attempt is taken up again when its key id was stored;
 *    a pending one without a key id (the `addKey` answer was lost, or never asked) is abandoned
 *    and replaced by a new certificate: Graph documents no way to find out whether it was added
 *    short of reading the app, so a possibly added one is left to expire;
 * 2. it is added to the app registration with Graph `addKey`, the proof signed by the current
 *    key, and the returned key id stored at once;
 * 3. a token is acquired with it in the home tenant, retried for up to `acceptanceWaitMs`: a key
 *    just added is refused (AADSTS700027) until it has reached Entra ID's replicas; after that
 *    the job fails retryably and the next attempt resumes at this step;
 * 4. it becomes current (token acquisition switches to it), the current one becomes previous —
 *    still on the app and used as the fallback credential in tenants the new key has not reached
 *    yet — and the previous one retired;
 * 5. retired certificates are removed from the app with `removeKey` by their stored key ids,
 *    signed by the key just replaced (proven valid; the new one may not have propagated). The
 *    previous key is never removed: the app keeps current + previous.
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
    const result = await withCurrentAndPreviousCredentials(db, keyRing, connector.id, (current, previous) => rotateWith(options, connector, current, previous, slot, signal));
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

/** How long to wait for a new key to be accepted, as Entra ID's replicas learn of it. */
const defaultAcceptanceWaitMs = 2 * 60_000;

/**
 * Acquires a token with the new key in the home tenant, retrying while Entra ID refuses it as a
 * credential (a key it has not propagated yet) for up to `waitMs`. Throws {@link UnavailableError}
 * after that, so the job is retried and resumes with the same pending key.
 */
async function probeNewKey(options: RotationOptions, settings: GraphConnectionSettings, credential: EntraCredential, thumbprint: string, signal: AbortSignal): Promise<void> {
  const waitMs = options.acceptanceWaitMs ?? defaultAcceptanceWaitMs;
  const deadline = Date.now() + waitMs;
  const pause = options.sleep ?? ((ms: number, s: AbortSignal) => delay(ms, undefined, { signal: s }));
  for (let attempt = 1; ; attempt += 1) {
    // A cache of its own: the answer must come from the token endpoint now.
    const probe = new GraphClient(settings, credential, { tokenCache: new EntraTokenCache(1), sleep: options.sleep, destinations: options.destinations });
    try {
      await probe.token(signal);
      return;
    } catch (error) {
      const propagating = error instanceof EntraAuthError && error.problem === 'credential';
      const why = error instanceof ProviderError ? error.message : String(error);
      if (!propagating || Date.now() >= deadline) {
        throw new UnavailableError(`the new certificate ${thumbprint} was added but Entra ID does not accept it yet: ${why}`);
      }
    } finally {
      await probe.close();
    }
    await pause(Math.min(Math.max(0, deadline - Date.now()), Math.min(30_000, 2_000 * 2 ** Math.min(attempt - 1, 4))), signal);
  }
}

async function rotateWith(
  options: RotationOptions,
  connector: Connector,
  current: ConnectorCredentialWithKey,
  previous: ConnectorCredentialWithKey | undefined,
  slot: Date | null,
  signal: AbortSignal,
): Promise<RotationResult> {
  const { db, keyRing } = options;
  const settings = homeSettings(connector);
  // The previous key is the fallback while the current one has not reached every replica of the
  // home tenant yet (a rotation soon after another); proofs are signed by the current key, which
  // is on the app either way.
  const client = new GraphClient(settings, certificateOf(connector, current), {
    tokenCache: options.tokenCache ?? new EntraTokenCache(4),
    sleep: options.sleep,
    destinations: options.destinations,
    ...(previous === undefined ? {} : { fallbackCredentials: [certificateOf(connector, previous)] }),
  });
  try {
    const keys = new ApplicationKeys(client, connector.applicationObjectId);
    let pending = await openPendingCredential(db, keyRing, connector.id);
    if (pending && pending.graphKeyId === null) {
      await markCredentialAbandoned(db, pending.id);
      await recordAudit(db, {
        actor: options.actor,
        action: 'connector.credential.abandoned',
        details: {
          connectorId: connector.id,
          connector: connector.name,
          thumbprint: pending.thumbprint,
          reason: 'an interrupted rotation did not record whether addKey added it; if the app registration lists it, it expires on its own or can be deleted there',
        },
      });
      pending = undefined;
    }
    if (!pending) {
      const generated = await generateCertificate({ subject: `dirsync connector ${connector.name}`, validityDays: connector.certificateValidityDays });
      await addPendingCredential(db, keyRing, connector.id, generated, slot);
      const stored = await openPendingCredential(db, keyRing, connector.id);
      if (!stored) throw new Error('the new certificate was not stored');
      const added = await keys.add(stored.certificatePem, current, signal);
      await setCredentialGraphKeyId(db, stored.id, added.keyId);
      pending = { ...stored, graphKeyId: added.keyId };
    }
    const keyId = pending.graphKeyId as string;

    // Entra ID must accept the new key before anything switches to it.
    await probeNewKey(options, settings, certificateOf(connector, pending), pending.thumbprint, signal);

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
    const removal = await removeRetired(options, connector, keys, current, signal);
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

/**
 * Removes retired certificates from the app registration by their stored key ids, proving
 * possession with `signer` (the key just made previous, which stays on the app).
 */
async function removeRetired(
  options: RotationOptions,
  connector: Connector,
  keys: ApplicationKeys,
  signer: ConnectorCredentialWithKey,
  signal: AbortSignal,
): Promise<{ removed: string[]; removalErrors: string[] }> {
  const { db } = options;
  const removed: string[] = [];
  const removalErrors: string[] = [];
  try {
    // Also those a failed removal left behind in an earlier rotation.
    const retired = await listRetiredCredentials(db, connector.id);
    for (const credential of retired) {
      if (credential.graphKeyId === null) {
        // Registered by hand without its key id: only reading the app could find it.
        await markCredentialAbandoned(db, credential.id);
        removalErrors.push(`${credential.thumbprint}: its key id on the app registration is not known; delete it there (Certificates & secrets) or let it expire`);
        continue;
      }
      try {
        const outcome = await keys.remove(credential.graphKeyId, signer, signal);
        await markCredentialRemoved(db, credential.id);
        removed.push(credential.thumbprint);
        await recordAudit(db, {
          actor: options.actor,
          action: 'connector.credential.removed',
          details: { connectorId: connector.id, connector: connector.name, thumbprint: credential.thumbprint, keyId: credential.graphKeyId, ...(outcome === 'absent' ? { alreadyGone: true } : {}) },
        });
      } catch (error) {
        removalErrors.push(`${credential.thumbprint}: ${classifyFailure(error).message}`);
      }
    }
  } catch (error) {
    removalErrors.push(classifyFailure(error).message);
  }
  if (removalErrors.length > 0) {
    await recordAudit(db, { actor: options.actor, action: 'connector.credential.remove_failed', details: { connectorId: connector.id, connector: connector.name, errors: removalErrors } });
  }
  return { removed, removalErrors };
}
