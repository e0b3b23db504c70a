import { useEffect, useRef, useState, type FormEvent } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api, consoleBase } from '../api.ts';
import { SelectField, TextField } from '../components/Field.tsx';
import { ErrorMessage, Loading } from '../components/Messages.tsx';
import { PageTitle } from '../components/PageTitle.tsx';
import { RunProgressList } from '../components/RunProgress.tsx';
import { CreateConnectorForm } from '../components/CreateConnectorForm.tsx';
import { focusFirstInvalid } from '../components/SettingsFields.tsx';
import { formatDateTime } from '../format.ts';
import { useLoad } from '../hooks.ts';
import { ApiError, assignFieldErrors, messageOf } from '../problem.ts';
import { useConsole } from '../session.tsx';
import { fieldId } from '../settings-fields.ts';
import type { Connector, FieldProblem, MigratedIntegration } from '../types.ts';

const consentText: Record<string, string> = {
  none: 'Not asked yet',
  pending: 'Waiting for the administrator',
  granted: 'Granted',
  denied: 'Denied',
  revoked: 'Revoked',
};

/** Sends the browser to a tenant's admin-consent page; the callback brings it back to `returnTo`. */
async function goToConsent(connectorId: string, tenantId: string, returnTo: string): Promise<void> {
  const { url } = await api.consentUrl(connectorId, tenantId, returnTo);
  window.location.assign(url);
}

function ConnectorCard({ connector, canConsent }: { connector: Connector; canConsent: boolean }) {
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const consent = async (tenantId: string) => {
    if (busy) return;
    setBusy(true);
    setError(undefined);
    try {
      await goToConsent(connector.id, tenantId, `${consoleBase}/connectors`);
    } catch (e) {
      setError(`The consent link for tenant ${tenantId} could not be made: ${messageOf(e)}`);
      setBusy(false);
    }
  };
  const headingId = `connector-${connector.id}`;
  return (
    <li className="card">
      <h2 id={headingId}>{connector.name}</h2>
      {connector.description === '' ? null : <p>{connector.description}</p>}
      <dl className="facts">
        <dt>Application (client) ID</dt>
        <dd className="mono">{connector.clientId}</dd>
        <dt>Cloud</dt>
        <dd>{connector.cloud}</dd>
        <dt>Permissions</dt>
        <dd>{connector.permissions.join(', ') || '—'}</dd>
      </dl>
      <h3>Certificate rotation</h3>
      <dl className="facts">
        <dt>Last rotation</dt>
        <dd>
          {connector.lastRotation.at === null ? 'Not rotated yet' : formatDateTime(connector.lastRotation.at)}
          {connector.lastRotation.status === null ? '' : ` (${connector.lastRotation.status})`}
          {connector.lastRotation.error === null ? '' : `: ${connector.lastRotation.error}`}
        </dd>
        <dt>Next rotation</dt>
        <dd>{formatDateTime(connector.nextRotationAt)}</dd>
        <dt>Current thumbprint</dt>
        <dd className="mono">{connector.currentThumbprint ?? 'No current certificate'}</dd>
        <dt>Failures</dt>
        <dd className={connector.rotationFailures > 0 ? 'field-error' : undefined}>
          {connector.rotationFailures === 0 ? 'None since the last rotation' : `${connector.rotationFailures} failed rotation${connector.rotationFailures === 1 ? '' : 's'} since the last success`}
        </dd>
      </dl>
      <details>
        <summary>Certificate history ({connector.certificates.length})</summary>
        <table className="data-table">
          <caption className="visually-hidden">Certificates of {connector.name}, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Thumbprint</th>
              <th scope="col">Status</th>
              <th scope="col">Valid from</th>
              <th scope="col">Valid until</th>
            </tr>
          </thead>
          <tbody>
            {connector.certificates.map((c) => (
              <tr key={c.id}>
                <th scope="row" data-label="Thumbprint" className="mono">
                  {c.thumbprint}
                </th>
                <td data-label="Status">{c.status}</td>
                <td data-label="Valid from">{formatDateTime(c.notBefore)}</td>
                <td data-label="Valid until">{formatDateTime(c.notAfter)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
      <h3>Consent of your tenants</h3>
      {connector.tenants.length === 0 ? (
        <p className="muted">None of your integrations uses this connector.</p>
      ) : (
        <table className="data-table">
          <caption className="visually-hidden">Consent per tenant on {connector.name}</caption>
          <thead>
            <tr>
              <th scope="col">Integration</th>
              <th scope="col">Tenant</th>
              <th scope="col">Consent</th>
              <th scope="col">Granted</th>
              {canConsent ? <th scope="col">Action</th> : null}
            </tr>
          </thead>
          <tbody>
            {connector.tenants.map((t) => (
              <tr key={`${t.integrationId}-${t.tenantId}`}>
                <th scope="row" data-label="Integration">
                  <Link to={`/integrations/${t.integrationId}`}>{t.integrationName}</Link>
                </th>
                <td data-label="Tenant" className="mono">
                  {t.tenantId}
                </td>
                <td data-label="Consent">
                  {consentText[t.consentStatus] ?? t.consentStatus}
                  {t.errorDescription === null ? '' : `: ${t.errorDescription}`}
                </td>
                <td data-label="Granted">{formatDateTime(t.grantedAt)}</td>
                {canConsent ? (
                  <td data-label="Action">
                    {t.consentStatus === 'granted' ? null : (
                      <button type="button" onClick={() => void consent(t.tenantId)} aria-disabled={busy}>
                        Grant consent<span className="visually-hidden"> for tenant {t.tenantId}</span>
                      </button>
                    )}
                  </td>
                ) : null}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {error === undefined ? null : <ErrorMessage>{error}</ErrorMessage>}
    </li>
  );
}

interface PendingMigration {
  readonly connectorId: string;
  readonly description: string;
}

const pendingKey = (integrationId: string) => `dirsync.console.migrate.${integrationId}`;

function readPending(integrationId: string): PendingMigration | undefined {
  try {
    const raw = sessionStorage.getItem(pendingKey(integrationId));
    if (raw === null) return undefined;
    const parsed = JSON.parse(raw) as Partial<PendingMigration>;
    return typeof parsed.connectorId === 'string' && typeof parsed.description === 'string' ? { connectorId: parsed.connectorId, description: parsed.description } : undefined;
  } catch {
    return undefined;
  }
}

function writePending(integrationId: string, pending: PendingMigration | undefined): void {
  try {
    if (pending === undefined) sessionStorage.removeItem(pendingKey(integrationId));
    else sessionStorage.setItem(pendingKey(integrationId), JSON.stringify(pending));
  } catch {
    // Without storage the administrator enters the description again after the consent.
  }
}

// The migrate route refuses a tenant the account holds no granted consent of (409): that is the
// cue to send the administrator to the consent page first.
function needsConsent(error: unknown): boolean {
  return error instanceof ApiError && (error.status === 409 || error.code === 'tenant-consent-required') && /consent/i.test(error.detail);
}

/**
 * "Create connector" for a legacy Entra ID integration: the name carried over (read-only), a
 * description to enter, the connector to use; "Grant consent" sends the administrator to the
 * tenant's admin-consent page, and on the way back the integration is switched.
 */
function MigrationForm({
  integrationId,
  connectors,
  consent,
  reason,
  onMigrated,
}: {
  integrationId: string;
  connectors: readonly Connector[];
  consent: string | null;
  reason: string | null;
  onMigrated: (result: MigratedIntegration) => void;
}) {
  const { refreshActions } = useConsole();
  const integration = useLoad(() => api.integration(integrationId), [integrationId]);
  const pending = useRef(readPending(integrationId));
  const [description, setDescription] = useState(pending.current?.description ?? '');
  const [connectorId, setConnectorId] = useState(pending.current?.connectorId ?? connectors[0]?.id ?? '');
  const [errors, setErrors] = useState<FieldProblem[]>([]);
  const [message, setMessage] = useState<{ error: boolean; text: string } | undefined>(
    consent === 'failed' ? { error: true, text: `Consent was not granted${reason === null ? '' : `: ${reason}`}. The integration was not migrated.` } : undefined,
  );
  const [busy, setBusy] = useState(false);
  const attempted = useRef(false);

  const tenantId = typeof integration.data?.settings['tenantId'] === 'string' ? integration.data.settings['tenantId'] : undefined;

  const migrate = async (chosen: PendingMigration, consentGranted: boolean) => {
    setBusy(true);
    setMessage(undefined);
    try {
      const result = await api.migrate(integrationId, chosen.connectorId, chosen.description);
      writePending(integrationId, undefined);
      refreshActions();
      onMigrated(result);
    } catch (error) {
      if (!consentGranted && needsConsent(error) && tenantId !== undefined) {
        writePending(integrationId, chosen);
        try {
          await goToConsent(chosen.connectorId, tenantId, `${consoleBase}/connectors?migrate=${integrationId}`);
          return;
        } catch (consentError) {
          setMessage({ error: true, text: `The consent link could not be made: ${messageOf(consentError)}` });
        }
      } else {
        const problems = error instanceof ApiError ? error.errors : [];
        setErrors(problems.map((p) => ({ ...p, path: p.path === '' ? 'description' : p.path })));
        setMessage({ error: true, text: `The integration was not migrated: ${messageOf(error)}` });
        if (problems.length > 0) focusFirstInvalid();
      }
    }
    setBusy(false);
  };

  // Back from the consent page: finish what the administrator started.
  useEffect(() => {
    if (consent !== 'granted' || attempted.current || integration.data === undefined) return;
    attempted.current = true;
    const chosen = pending.current;
    if (chosen === undefined) {
      setMessage({ error: false, text: 'Consent granted. Enter the description again and select "Grant consent" to finish the migration.' });
      return;
    }
    void migrate(chosen, true);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [consent, integration.data]);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (busy) return;
    const problems: FieldProblem[] = [];
    if (description.trim() === '') problems.push({ in: 'body', path: 'description', message: 'Enter a description: it is required' });
    if (connectorId === '') problems.push({ in: 'body', path: 'connectorId', message: 'Choose the connector to use' });
    setErrors(problems);
    if (problems.length > 0) {
      setMessage({ error: true, text: 'The integration was not migrated: fill in the required fields.' });
      focusFirstInvalid();
      return;
    }
    await migrate({ connectorId, description: description.trim() }, false);
  };

  const { byField } = assignFieldErrors(errors, ['description', 'connectorId']);
  if (integration.error !== undefined) return <ErrorMessage error={integration.error} />;
  if (integration.data === undefined) return <Loading what="the integration to migrate" />;
  return (
    <section className="panel" aria-labelledby="migration-heading">
      <h2 id="migration-heading">Create connector</h2>
      <p>
        Migrating <strong>{integration.data.name}</strong>
        {tenantId === undefined ? '' : ` (tenant ${tenantId})`} from its own Azure app registration to a connector. The name is carried over; enter a
        description, then grant the connector consent in the tenant as one of its administrators.
      </p>
      <form onSubmit={(e) => void submit(e)} noValidate>
        <TextField id={fieldId('migrate-name')} label="Name" value={integration.data.name} onChange={() => undefined} readOnly hint="Carried over from the integration" />
        <TextField id={fieldId('description')} label="Description" required value={description} onChange={setDescription} errors={byField.get('description')} />
        <SelectField
          id={fieldId('connectorId')}
          label="Connector"
          required
          value={connectorId}
          onChange={setConnectorId}
          options={[{ value: '', label: 'Choose a connector' }, ...connectors.map((c) => ({ value: c.id, label: `${c.name} (${c.clientId})` }))]}
          errors={byField.get('connectorId')}
        />
        <div className="form-buttons">
          <button type="submit" aria-disabled={busy}>
            Grant consent
          </button>
          {busy ? <span role="status">Working…</span> : null}
        </div>
      </form>
      {message === undefined ? null : message.error ? (
        <ErrorMessage>{message.text}</ErrorMessage>
      ) : (
        <p role="status" className="message message-ok">
          {message.text}
        </p>
      )}
    </section>
  );
}

function MigrationDone({ result }: { result: MigratedIntegration }) {
  return (
    <section className="panel" aria-labelledby="migrated-heading">
      <h2 id="migrated-heading">Migration complete</h2>
      <p role="status" className="message message-ok">
        {result.name} now syncs through its connector{result.sync === null ? '.' : '; a full sync was queued.'}
      </p>
      <h3>Remove the old Azure app</h3>
      <p>
        In tenant <span className="mono">{result.tenantId}</span>, delete the app registration with client ID <span className="mono">{result.legacyClientId}</span>{' '}
        (Microsoft Entra admin center, App registrations): dirsync no longer uses it, and its secret should not stay valid.
      </p>
      {result.sync === null ? null : <RunProgressList watched={[{ runId: result.sync.runId, integrationName: result.name, label: 'Sync All' }]} />}
      <p>
        <Link to={`/integrations/${result.id}`}>Open {result.name}</Link>
      </p>
    </section>
  );
}

/** `/console/connectors`: connectors, consent per tenant, certificate rotation, creation and migration. */
export function ConnectorsPage() {
  const { can, session } = useConsole();
  const [params, setParams] = useSearchParams();
  const connectors = useLoad(() => api.connectors(), []);
  const [migrated, setMigrated] = useState<MigratedIntegration | undefined>(undefined);
  const migrate = params.get('migrate');
  const consent = params.get('consent');
  const tenant = params.get('tenant');
  const reason = params.get('reason');
  const { reload } = connectors;

  const onMigrated = (result: MigratedIntegration) => {
    setMigrated(result);
    setParams({}, { replace: true });
    reload();
  };

  return (
    <>
      <PageTitle title="Connectors">Connectors</PageTitle>
      <p className="muted">
        Connectors are the platform's Microsoft Entra ID app registrations: your tenants consent to one, and dirsync reads them with a certificate it rotates daily. No
        Azure app of your own is needed.
      </p>
      {migrate === null && consent === 'granted' ? (
        <p role="status" className="message message-ok">
          Tenant {tenant ?? ''} granted consent.
        </p>
      ) : null}
      {migrate === null && consent === 'failed' ? (
        <ErrorMessage>
          Consent was not granted{tenant === null ? '' : ` by tenant ${tenant}`}
          {reason === null ? '.' : `: ${reason}`}
        </ErrorMessage>
      ) : null}
      {migrated === undefined ? null : <MigrationDone result={migrated} />}
      {connectors.error === undefined ? null : <ErrorMessage error={connectors.error} />}
      {connectors.data === undefined ? (
        connectors.error === undefined ? <Loading what="connectors" /> : null
      ) : (
        <>
          {migrate === null ? null : can('admin') ? (
            <MigrationForm integrationId={migrate} connectors={connectors.data.items} consent={consent} reason={reason} onMigrated={onMigrated} />
          ) : (
            <ErrorMessage>Only administrators of the account can migrate an integration.</ErrorMessage>
          )}
          {connectors.data.items.length === 0 ? (
            <p>No connectors yet.</p>
          ) : (
            <ul className="card-list" aria-label="Connectors">
              {connectors.data.items.map((connector) => (
                <ConnectorCard key={connector.id} connector={connector} canConsent={can('admin') && migrate === null} />
              ))}
            </ul>
          )}
          {migrate === null && session.platform !== null && session.platform.role === 'admin' ? <CreateConnectorForm onCreated={reload} /> : null}
        </>
      )}
    </>
  );
}
