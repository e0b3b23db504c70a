import { useEffect, useRef, useState, type FormEvent } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { api, consoleBase } from '../api.ts';
import { CreateConnectorForm } from '../components/CreateConnectorForm.tsx';
import { TextField } from '../components/Field.tsx';
import { Checklist, ErrorMessage, FormProblem } from '../components/Messages.tsx';
import { PageTitle } from '../components/PageTitle.tsx';
import { focusFirstInvalid, SettingsFields, settingsFieldPaths } from '../components/SettingsFields.tsx';
import { kindText } from '../format.ts';
import { ApiError, assignFieldErrors, messageOf } from '../problem.ts';
import { useConsole } from '../session.tsx';
import { applyFields, fieldId, readFields, type FieldValue } from '../settings-fields.ts';
import type { ConnectionReport, CreatedConnector, FieldProblem, Integration, IntegrationKind } from '../types.ts';
import type { DirectorySyncState } from './DirectorySyncPage.tsx';

const kinds: ReadonlyArray<{ value: IntegrationKind; hint: string }> = [
  { value: 'ldap', hint: 'OpenLDAP and other RFC 4512 directories' },
  { value: 'active_directory', hint: 'On-premises Active Directory over LDAPS or StartTLS' },
  { value: 'domino', hint: 'HCL Domino Directory over LDAP' },
  { value: 'entra_id', hint: 'Microsoft Entra ID (Azure AD) through a connector' },
];

const passwordKinds = new Set<string>(['ldap', 'active_directory', 'domino']);

type Step = 'type' | 'details' | 'test';

const stepTitles: Record<Step, string> = { type: 'Directory type', details: 'Settings', test: 'Test Connection' };

/** What survives the trip to a tenant's consent page and back. */
interface SavedWizard {
  readonly kind: IntegrationKind;
  readonly name: string;
  readonly description: string;
  readonly settings: Record<string, FieldValue>;
}

const savedKey = 'dirsync.console.wizard';

function loadSaved(): SavedWizard | undefined {
  try {
    const raw = sessionStorage.getItem(savedKey);
    return raw === null ? undefined : (JSON.parse(raw) as SavedWizard);
  } catch {
    return undefined;
  }
}

function save(state: SavedWizard | undefined): void {
  try {
    if (state === undefined) sessionStorage.removeItem(savedKey);
    else sessionStorage.setItem(savedKey, JSON.stringify(state));
  } catch {
    // Without storage the fields are entered again after the consent.
  }
}

/** `/console/integrations/new`: directory type, settings, Test Connection, then the first sync. */
export function NewIntegrationPage() {
  const { can, session } = useConsole();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const consent = params.get('consent');
  const restored = useRef(consent === null ? undefined : loadSaved());
  const [step, setStep] = useState<Step>(restored.current === undefined ? 'type' : 'details');
  const [kind, setKind] = useState<IntegrationKind>(restored.current?.kind ?? 'ldap');
  const [name, setName] = useState(restored.current?.name ?? '');
  const [description, setDescription] = useState(restored.current?.description ?? '');
  const [password, setPassword] = useState('');
  const [storedPassword, setStoredPassword] = useState<string | undefined>(undefined);
  const [settings, setSettings] = useState<Record<string, FieldValue>>(() => restored.current?.settings ?? readFields('ldap', {}));
  const [connectorMode, setConnectorMode] = useState<'existing' | 'new'>('existing');
  const [newConnector, setNewConnector] = useState<CreatedConnector | undefined>(undefined);
  const [errors, setErrors] = useState<FieldProblem[]>([]);
  const [failure, setFailure] = useState<string | undefined>(undefined);
  const [consentNeeded, setConsentNeeded] = useState<{ connectorId: string; tenantId: string } | undefined>(undefined);
  const [created, setCreated] = useState<Integration | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const [test, setTest] = useState<{ running: boolean; report?: ConnectionReport; error?: string } | undefined>(undefined);
  const stepHeading = useRef<HTMLHeadingElement>(null);
  const firstStep = useRef(true);

  useEffect(() => {
    // Each step's heading takes the focus, so the next field is one Tab away.
    if (firstStep.current) {
      firstStep.current = false;
      return;
    }
    stepHeading.current?.focus();
  }, [step]);

  if (!can('admin')) {
    return (
      <>
        <PageTitle title="New integration">New integration</PageTitle>
        <p>Only administrators of the account can add integrations.</p>
        <Link to="/">Back to Directory Synchronization</Link>
      </>
    );
  }

  const chooseKind = (next: IntegrationKind) => {
    setKind(next);
    setSettings(readFields(next, {}));
    setErrors([]);
    setFailure(undefined);
  };

  const topPaths = ['name', 'description', 'secret'];
  const { byField, unassigned } = assignFieldErrors(errors, [...topPaths, ...settingsFieldPaths(kind)]);

  const submitDetails = async (event: FormEvent) => {
    event.preventDefault();
    if (busy) return;
    const local: FieldProblem[] = [];
    if (name.trim() === '') local.push({ in: 'body', path: 'name', message: 'Enter a name: it is required' });
    if (kind === 'entra_id' && connectorMode === 'new') {
      // Only platform administrators see the form below; anyone else needs an existing connector.
      setFailure(
        session.platform?.role === 'admin'
          ? 'Create the connector first (below), or choose "Use an existing connector".'
          : 'Only platform operators can create connectors: choose "Use an existing connector".',
      );
      return;
    }
    if (local.length > 0) {
      setErrors(local);
      setFailure('The integration was not created: fill in the required fields.');
      focusFirstInvalid();
      return;
    }
    setBusy(true);
    setFailure(undefined);
    setConsentNeeded(undefined);
    const body = applyFields(kind, created?.settings ?? {}, settings);
    try {
      let integration: Integration;
      if (created === undefined) {
        // Created disabled: nothing syncs before Test Connection has passed and "Start first sync".
        integration = await api.createIntegration({
          kind,
          name: name.trim(),
          description: description.trim(),
          settings: body,
          enabled: false,
          ...(passwordKinds.has(kind) && password !== '' ? { secret: password } : {}),
        });
        if (password !== '') setStoredPassword(password);
      } else {
        integration = await api.updateIntegration(created.id, { name: name.trim(), description: description.trim(), settings: body });
        if (passwordKinds.has(kind) && password !== '' && password !== storedPassword) {
          // Replacing a stored password tests it first; a refusal is reported like any other.
          await api.setSecret(created.id, password);
          setStoredPassword(password);
        }
      }
      setCreated(integration);
      setErrors([]);
      save(undefined);
      setTest(undefined);
      setStep('test');
    } catch (error) {
      if (error instanceof ApiError && error.code === 'tenant-consent-required') {
        const connectorId = typeof body['connectorId'] === 'string' ? body['connectorId'] : '';
        const tenantId = typeof body['tenantId'] === 'string' ? body['tenantId'] : '';
        setConsentNeeded({ connectorId, tenantId });
        setFailure(`Tenant ${tenantId} has not granted consent to this connector yet. Grant consent as one of the tenant's administrators, then select Next again.`);
      } else if (error instanceof ApiError && error.code === 'connection-failed') {
        setFailure('The new password was not stored: Test Connection failed');
      } else {
        const problems = error instanceof ApiError ? [...error.errors] : [];
        setErrors(problems);
        setFailure(`The integration was not ${created === undefined ? 'created' : 'saved'}: ${problems.length > 0 ? 'see the fields marked below' : messageOf(error)}`);
        if (problems.length > 0) focusFirstInvalid();
      }
    } finally {
      setBusy(false);
    }
  };

  const grantConsent = async () => {
    if (consentNeeded === undefined || busy) return;
    setBusy(true);
    save({ kind, name, description, settings });
    try {
      const { url } = await api.consentUrl(consentNeeded.connectorId, consentNeeded.tenantId, `${consoleBase}/integrations/new?kind=${kind}`);
      window.location.assign(url);
    } catch (error) {
      setFailure(`The consent link could not be made: ${messageOf(error)}`);
      setBusy(false);
    }
  };

  const runTest = async () => {
    if (created === undefined || test?.running === true) return;
    setTest({ running: true });
    try {
      setTest({ running: false, report: await api.testConnection(created.id) });
    } catch (error) {
      setTest({ running: false, error: messageOf(error) });
    }
  };

  const startFirstSync = async () => {
    if (created === undefined || busy) return;
    setBusy(true);
    setFailure(undefined);
    try {
      const { sync } = await api.enableWithFullSync(created.id);
      if (sync === null) throw new Error('the API queued no sync');
      const state: DirectorySyncState = { watch: { runId: sync.runId, integrationName: created.name, label: 'First sync' } };
      navigate('/', { state });
    } catch (error) {
      setFailure(`The first sync was not started: ${messageOf(error)}`);
      setBusy(false);
    }
  };

  const steps: Step[] = ['type', 'details', 'test'];
  return (
    <>
      <PageTitle title="New integration">New integration</PageTitle>
      <ol className="steps" aria-label="Steps">
        {steps.map((s) => (
          <li key={s} aria-current={s === step ? 'step' : undefined}>
            {stepTitles[s]}
          </li>
        ))}
      </ol>
      {consent === 'granted' && step === 'details' ? (
        <p role="status" className="message message-ok">
          Consent granted{params.get('tenant') === null ? '' : ` by tenant ${params.get('tenant') ?? ''}`}. Select Next to create the integration.
        </p>
      ) : null}
      {consent === 'failed' && step === 'details' ? <ErrorMessage>Consent was not granted{params.get('reason') === null ? '.' : `: ${params.get('reason') ?? ''}`} Select Next, then Grant consent to ask the tenant's administrator again.</ErrorMessage> : null}

      {step === 'type' ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            setStep('details');
          }}
        >
          <h2 ref={stepHeading} tabIndex={-1}>
            {stepTitles.type}
          </h2>
          <fieldset role="radiogroup" aria-labelledby="kind-legend">
            <legend id="kind-legend">Directory type</legend>
            {kinds.map((k) => (
              <div className="choice" key={k.value}>
                <input
                  type="radio"
                  name="kind"
                  id={`kind-${k.value}`}
                  value={k.value}
                  checked={kind === k.value}
                  // Once saved, the integration keeps its kind: its settings belong to it.
                  disabled={created !== undefined && created.kind !== k.value}
                  onChange={() => chooseKind(k.value)}
                  aria-describedby={`kind-${k.value}-hint`}
                />
                <label htmlFor={`kind-${k.value}`}>{kindText(k.value)}</label>
                <span className="hint" id={`kind-${k.value}-hint`}>
                  {k.hint}
                </span>
              </div>
            ))}
          </fieldset>
          {created === undefined ? null : <p className="hint">{created.name} is already saved as {kindText(created.kind)}: its directory type stays.</p>}
          <div className="form-buttons">
            <button type="submit">Next</button>
            <Link to="/" className="button secondary">
              Cancel
            </Link>
          </div>
        </form>
      ) : null}

      {step === 'details' ? (
        <>
          <form onSubmit={(e) => void submitDetails(e)} noValidate>
            <h2 ref={stepHeading} tabIndex={-1}>
              {stepTitles.details}: {kindText(kind)}
            </h2>
            <TextField id={fieldId('name')} label="Name" required value={name} onChange={setName} errors={byField.get('name')} placeholder="Head office directory" />
            <TextField id={fieldId('description')} label="Description" value={description} onChange={setDescription} errors={byField.get('description')} />
            {kind === 'entra_id' ? (
              <fieldset role="radiogroup" aria-labelledby="connector-mode-legend">
                <legend id="connector-mode-legend">Connection to Microsoft Entra ID</legend>
                <div className="choice">
                  <input type="radio" name="connector-mode" id="connector-existing" checked={connectorMode === 'existing'} onChange={() => setConnectorMode('existing')} />
                  <label htmlFor="connector-existing">Use an existing connector</label>
                </div>
                <div className="choice">
                  <input type="radio" name="connector-mode" id="connector-new" checked={connectorMode === 'new'} onChange={() => setConnectorMode('new')} />
                  <label htmlFor="connector-new">Create a new connector</label>
                </div>
              </fieldset>
            ) : null}
            <SettingsFields
              kind={kind}
              values={settings}
              onChange={(path, value) => setSettings((s) => ({ ...s, [path]: value }))}
              byField={byField}
              omit={kind === 'entra_id' && connectorMode === 'new' ? ['connectorId'] : []}
              key={newConnector?.id ?? 'fields'}
            />
            {passwordKinds.has(kind) ? (
              <TextField
                id={fieldId('secret')}
                label="Password"
                type="password"
                autoComplete="new-password"
                value={password}
                onChange={setPassword}
                errors={byField.get('secret')}
                hint="Password of the service account (User Distinguished Name above); stored encrypted and tested in the next step"
              />
            ) : null}
            {kind === 'entra_id' && newConnector !== undefined ? (
              <div className="message message-ok" role="status">
                <p>
                  Connector {newConnector.name} created and selected. Upload its certificate to the app registration ({newConnector.clientId}):
                </p>
                <pre className="pem" tabIndex={0} aria-label="Certificate to upload">
                  {newConnector.certificatePem}
                </pre>
              </div>
            ) : null}
            <div className="form-buttons">
              <button type="button" className="secondary" onClick={() => setStep('type')}>
                Back
              </button>
              <button type="submit" aria-disabled={busy}>
                Next
              </button>
              {busy ? <span role="status">Saving…</span> : null}
            </div>
          </form>
          {failure === undefined ? null : (
            <FormProblem message={failure} unassigned={unassigned} />
          )}
          {consentNeeded === undefined ? null : (
            <button type="button" onClick={() => void grantConsent()} aria-disabled={busy}>
              Grant consent
            </button>
          )}
          {kind === 'entra_id' && connectorMode === 'new' ? (
            session.platform?.role === 'admin' ? (
              <CreateConnectorForm
                headingLevel={3}
                onCreated={(connector) => {
                  setNewConnector(connector);
                  setSettings((s) => ({ ...s, connectorId: connector.id }));
                  setConnectorMode('existing');
                }}
              />
            ) : (
              <p className="message message-warn">
                Only platform operators can create connectors. Ask yours for one, or choose "Use an existing connector". See <Link to="/connectors">Connectors</Link>.
              </p>
            )
          ) : null}
        </>
      ) : null}

      {step === 'test' && created !== undefined ? (
        <section>
          <h2 ref={stepHeading} tabIndex={-1}>
            {stepTitles.test}
          </h2>
          <p>
            {created.name} is saved, disabled until its first sync. Test the connection on a worker before the first sync.
          </p>
          <div className="form-buttons">
            <button type="button" className="secondary" onClick={() => setStep('details')}>
              Back
            </button>
            <button type="button" onClick={() => void runTest()} aria-disabled={test?.running === true}>
              Test Connection
            </button>
            <button type="button" onClick={() => void startFirstSync()} disabled={test?.report?.ok !== true} aria-describedby="first-sync-hint">
              Start first sync
            </button>
          </div>
          <p id="first-sync-hint" className="hint">
            {test?.report?.ok === true ? 'The connection works: start the first sync (Sync All).' : 'Available once Test Connection has passed.'}
          </p>
          <div role="status" aria-label="Test Connection result">
            {test === undefined ? null : test.running ? (
              <p>Testing the connection on a worker…</p>
            ) : test.report !== undefined ? (
              <>
                <p className={`message ${test.report.ok ? 'message-ok' : 'message-error'}`}>
                  {test.report.ok ? 'Test Connection passed.' : 'Test Connection failed: go Back to correct the settings or the password.'}
                </p>
                <Checklist checks={test.report.checks} label="Test Connection checklist" />
              </>
            ) : (
              <p className="message message-error">Test Connection could not run: {test.error}</p>
            )}
          </div>
          {failure === undefined ? null : <ErrorMessage>{failure}</ErrorMessage>}
        </section>
      ) : null}
    </>
  );
}
