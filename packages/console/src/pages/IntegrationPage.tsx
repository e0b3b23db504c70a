import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { Link, useLocation, useNavigate, useParams } from 'react-router';
import { api } from '../api.ts';
import { TextField } from '../components/Field.tsx';
import { Checklist, ErrorMessage, FormProblem, Loading, notFoundTitle } from '../components/Messages.tsx';
import { PageTitle } from '../components/PageTitle.tsx';
import { RunProgressList, type WatchedRun } from '../components/RunProgress.tsx';
import { focusFirstInvalid, SettingsFields, settingsFieldPaths } from '../components/SettingsFields.tsx';
import { countsSummary, describeCron, formatDateTime, formatDuration, kindText, runStatusText } from '../format.ts';
import { useLoad } from '../hooks.ts';
import { ApiError, assignFieldErrors, checksOf, messageOf, type CheckLine } from '../problem.ts';
import { useConsole } from '../session.tsx';
import { applyFields, fieldId, readFields, type FieldValue } from '../settings-fields.ts';
import type { ConnectionReport, FieldProblem, Integration, SyncMode, UpdateIntegrationBody } from '../types.ts';
import type { DirectorySyncState } from './DirectorySyncPage.tsx';

// Kinds that bind with a service account, whose password the page can replace.
const passwordKinds = new Set(['ldap', 'active_directory', 'domino']);

function TestConnectionResult({ state }: { state: { running: boolean; report?: ConnectionReport; error?: unknown } | undefined }) {
  return (
    <div role="status" aria-label="Test Connection result">
      {state === undefined ? null : state.running ? (
        <p>Testing the connection on a worker…</p>
      ) : state.report !== undefined ? (
        <>
          <p className={`message ${state.report.ok ? 'message-ok' : 'message-error'}`}>{state.report.ok ? 'Test Connection passed.' : 'Test Connection failed.'}</p>
          <Checklist checks={state.report.checks} label="Test Connection checklist" />
        </>
      ) : (
        <p className="message message-error">Test Connection could not run: {messageOf(state.error)}</p>
      )}
    </div>
  );
}

function PasswordForm({ integration }: { integration: Integration }) {
  const navigate = useNavigate();
  const { refreshActions } = useConsole();
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<{ message: string; checks: CheckLine[]; fieldError?: string } | undefined>(undefined);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (busy) return;
    if (password === '') {
      setFailure({ message: 'Enter the new password first.', checks: [], fieldError: 'Enter the new password' });
      focusFirstInvalid();
      return;
    }
    setBusy(true);
    setFailure(undefined);
    try {
      const answer = await api.setSecret(integration.id, password);
      setPassword('');
      refreshActions();
      const state: DirectorySyncState =
        answer.sync === null
          ? { notice: `The new password of ${integration.name} passed Test Connection and is stored. The integration is disabled, so no sync was started.` }
          : { watch: { runId: answer.sync.runId, integrationName: integration.name, label: 'Sync All' }, notice: `The new password of ${integration.name} passed Test Connection and is stored.` };
      navigate('/', { state });
    } catch (error) {
      if (error instanceof ApiError && error.code === 'connection-failed') {
        setFailure({ message: 'The new password was not stored: Test Connection failed', checks: checksOf(error.problem) });
      } else if (error instanceof ApiError && error.errors.length > 0) {
        setFailure({ message: `The new password was not stored: ${error.detail}`, checks: [], fieldError: error.errors.map((e) => e.message).join('; ') });
        focusFirstInvalid();
      } else {
        setFailure({ message: `The new password was not stored: ${messageOf(error)}`, checks: [] });
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="panel" id="password">
      <h2 id="password-heading">Service account password</h2>
      <form onSubmit={(e) => void submit(e)} noValidate>
        <TextField
          id="integration-password"
          label="Password"
          type="password"
          autoComplete="new-password"
          value={password}
          onChange={setPassword}
          hint={`The service account's new password (${String(integration.settings['bindDn'] ?? 'User Distinguished Name')}). A worker tests it first: it is stored only when Test Connection passes, then Sync All runs.`}
          errors={failure?.fieldError === undefined ? undefined : [failure.fieldError]}
        />
        <div className="form-buttons">
          <button type="submit" aria-disabled={busy}>
            Save and Exit
          </button>
          {busy ? <span role="status">Testing the new password on a worker…</span> : null}
        </div>
      </form>
      {failure === undefined ? null : (
        <div role="alert" className="message message-error">
          <p>{failure.message}</p>
          {failure.checks.length === 0 ? null : <Checklist checks={failure.checks} label="Failed Test Connection checklist" />}
        </div>
      )}
    </section>
  );
}

interface SettingsState {
  name: string;
  description: string;
  deltaCron: string;
  fullCron: string;
  deleteThresholdCount: string;
  deleteThresholdPercent: string;
  settings: Record<string, FieldValue>;
}

function stateOf(integration: Integration): SettingsState {
  return {
    name: integration.name,
    description: integration.description,
    deltaCron: integration.deltaCron,
    fullCron: integration.fullCron,
    deleteThresholdCount: String(integration.deleteThresholdCount),
    deleteThresholdPercent: String(integration.deleteThresholdPercent),
    settings: readFields(integration.kind, integration.settings),
  };
}

const topFields = ['name', 'description', 'deltaCron', 'fullCron', 'deleteThresholdCount', 'deleteThresholdPercent'];

function numberOrUndefined(text: string): number | undefined {
  const trimmed = text.trim();
  return trimmed === '' ? undefined : Number(trimmed);
}

function SettingsForm({ integration, onSaved }: { integration: Integration; onSaved: (updated: Integration) => void }) {
  const { can } = useConsole();
  const editable = can('admin');
  const [form, setForm] = useState<SettingsState>(() => stateOf(integration));
  const [errors, setErrors] = useState<readonly FieldProblem[]>([]);
  const [outcome, setOutcome] = useState<{ ok: boolean; message: string } | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const { byField, unassigned } = assignFieldErrors(errors, [...topFields, ...settingsFieldPaths(integration.kind)]);
  const set = (patch: Partial<SettingsState>) => setForm((f) => ({ ...f, ...patch }));

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    setOutcome(undefined);
    const count = numberOrUndefined(form.deleteThresholdCount);
    const percent = numberOrUndefined(form.deleteThresholdPercent);
    const patch: UpdateIntegrationBody = {
      name: form.name,
      description: form.description,
      settings: applyFields(integration.kind, integration.settings, form.settings),
      deltaCron: form.deltaCron,
      fullCron: form.fullCron,
      ...(count === undefined ? {} : { deleteThresholdCount: count }),
      ...(percent === undefined ? {} : { deleteThresholdPercent: percent }),
    };
    try {
      const updated = await api.updateIntegration(integration.id, patch);
      setErrors([]);
      setOutcome({ ok: true, message: 'Settings saved.' });
      onSaved(updated);
    } catch (error) {
      const problems = error instanceof ApiError ? error.errors : [];
      setErrors(problems);
      setOutcome({ ok: false, message: `The settings were not saved: ${problems.length > 0 ? `${problems.length === 1 ? 'one field needs' : `${problems.length} fields need`} attention` : messageOf(error)}` });
      if (problems.length > 0) focusFirstInvalid();
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="panel" aria-labelledby="settings-heading">
      <h2 id="settings-heading">Settings</h2>
      {editable ? null : <p className="muted">Only administrators of the account can change the settings.</p>}
      <form onSubmit={(e) => void submit(e)} noValidate>
        <fieldset disabled={!editable} className="plain">
          <legend className="visually-hidden">Settings of {integration.name}</legend>
          <TextField id={fieldId('name')} label="Name" required value={form.name} onChange={(name) => set({ name })} errors={byField.get('name')} />
          <TextField id={fieldId('description')} label="Description" value={form.description} onChange={(description) => set({ description })} errors={byField.get('description')} />
          <SettingsFields
            kind={integration.kind}
            values={form.settings}
            onChange={(path, value) => set({ settings: { ...form.settings, [path]: value } })}
            byField={byField}
            disabled={!editable}
            // A legacy integration keeps its own app until migrated (Connectors page), so no connector is chosen here.
            omit={typeof integration.settings['legacyApp'] === 'object' ? ['connectorId'] : []}
          />
          <TextField
            id={fieldId('deltaCron')}
            label="Sync changes schedule (cron)"
            value={form.deltaCron}
            onChange={(deltaCron) => set({ deltaCron })}
            hint={`Now: ${describeCron(integration.deltaCron)}`}
            errors={byField.get('deltaCron')}
          />
          <TextField
            id={fieldId('fullCron')}
            label="Sync All schedule (cron)"
            value={form.fullCron}
            onChange={(fullCron) => set({ fullCron })}
            hint={`Now: ${describeCron(integration.fullCron)}`}
            errors={byField.get('fullCron')}
          />
          <TextField
            id={fieldId('deleteThresholdCount')}
            label="Deletion threshold (objects)"
            type="number"
            value={form.deleteThresholdCount}
            onChange={(deleteThresholdCount) => set({ deleteThresholdCount })}
            hint="A run that would delete more objects than this waits for approval"
            errors={byField.get('deleteThresholdCount')}
          />
          <TextField
            id={fieldId('deleteThresholdPercent')}
            label="Deletion threshold (percent)"
            type="number"
            value={form.deleteThresholdPercent}
            onChange={(deleteThresholdPercent) => set({ deleteThresholdPercent })}
            hint="…or more than this share of the synced objects"
            errors={byField.get('deleteThresholdPercent')}
          />
        </fieldset>
        {editable ? (
          <div className="form-buttons">
            <button type="submit" aria-disabled={busy}>
              Save settings
            </button>
          </div>
        ) : null}
      </form>
      {outcome === undefined ? null : outcome.ok ? (
        <p role="status" className="message message-ok">
          {outcome.message}
        </p>
      ) : (
        <FormProblem message={outcome.message} unassigned={unassigned} />
      )}
    </section>
  );
}

function RunsSection({ integrationId, generation }: { integrationId: string; generation: number }) {
  const runs = useLoad(() => api.runs(integrationId, 25), [integrationId, generation]);
  return (
    <section aria-labelledby="runs-heading">
      <h2 id="runs-heading">Runs</h2>
      {runs.error === undefined ? null : <ErrorMessage error={runs.error} />}
      {runs.data === undefined ? (
        runs.error === undefined ? <Loading what="runs" /> : null
      ) : runs.data.items.length === 0 ? (
        <p>No runs yet.</p>
      ) : (
        <table className="data-table">
          <caption className="visually-hidden">Runs, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Queued</th>
              <th scope="col">Mode</th>
              <th scope="col">Trigger</th>
              <th scope="col">Status</th>
              <th scope="col">Changes</th>
              <th scope="col">Duration</th>
            </tr>
          </thead>
          <tbody>
            {runs.data.items.map((run) => (
              <tr key={run.id}>
                <th scope="row" data-label="Queued">
                  <Link to={`/runs/${run.id}`}>{formatDateTime(run.queuedAt)}</Link>
                </th>
                <td data-label="Mode">
                  {(run.mode ?? run.modeRequested) === 'full' ? 'Sync All' : 'Sync changes'}
                  {run.dryRun ? ' (dry run)' : ''}
                </td>
                <td data-label="Trigger">{run.trigger.replace('_', ' ')}</td>
                <td data-label="Status">{runStatusText(run.status)}</td>
                <td data-label="Changes">{countsSummary(run.counts)}</td>
                <td data-label="Duration">{formatDuration(run.durationMs)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

/** `/console/integrations/:id`: one integration, its actions, password, settings and runs. */
export function IntegrationPage() {
  const { id = '' } = useParams();
  const { can, refreshActions } = useConsole();
  const location = useLocation();
  const loaded = useLoad(() => api.integration(id), [id]);
  const [integration, setIntegration] = useState<Integration | undefined>(undefined);
  const [watched, setWatched] = useState<WatchedRun[]>([]);
  const [test, setTest] = useState<{ running: boolean; report?: ConnectionReport; error?: unknown } | undefined>(undefined);
  const [actionError, setActionError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const [runsGeneration, setRunsGeneration] = useState(0);

  useEffect(() => {
    if (loaded.data !== undefined) setIntegration(loaded.data);
  }, [loaded.data]);

  useEffect(() => {
    // A link to #password (from Actions needed) lands on the password field.
    if (integration !== undefined && location.hash === '#password') document.getElementById('integration-password')?.focus();
  }, [integration, location.hash]);

  const { reload } = loaded;
  const onFinal = useCallback(() => {
    reload();
    setRunsGeneration((g) => g + 1);
    refreshActions();
  }, [reload, refreshActions]);

  if (integration === undefined) {
    return loaded.error === undefined ? (
      <Loading what="the integration" />
    ) : (
      <>
        <PageTitle title={notFoundTitle(loaded.error, 'Integration')}>{notFoundTitle(loaded.error, 'Integration')}</PageTitle>
        <ErrorMessage error={loaded.error} />
        <p>
          <Link to="/">Back to Directory Synchronization</Link>
        </p>
      </>
    );
  }

  const guarded = async (work: () => Promise<void>) => {
    if (busy) return;
    setBusy(true);
    setActionError(undefined);
    try {
      await work();
    } catch (error) {
      setActionError(messageOf(error));
    } finally {
      setBusy(false);
    }
  };

  const sync = (mode: SyncMode, dryRun: boolean) =>
    guarded(async () => {
      const label = dryRun ? 'Dry run' : mode === 'full' ? 'Sync All' : 'Sync changes';
      const answer = await api.sync(integration.id, mode, dryRun);
      setWatched((list) => [{ runId: answer.runId, integrationName: integration.name, label }, ...list.filter((w) => w.runId !== answer.runId)]);
      setRunsGeneration((g) => g + 1);
    });

  const testConnection = async () => {
    if (test?.running === true) return;
    setTest({ running: true });
    try {
      setTest({ running: false, report: await api.testConnection(integration.id) });
    } catch (error) {
      setTest({ running: false, error });
    }
  };

  const toggle = () =>
    guarded(async () => {
      setIntegration(await api.setEnabled(integration.id, !integration.enabled));
      refreshActions();
    });

  return (
    <>
      <PageTitle title={integration.name}>{integration.name}</PageTitle>
      <dl className="facts">
        <dt>Kind</dt>
        <dd>{kindText(integration.kind)}</dd>
        <dt>Status</dt>
        <dd>
          {integration.enabled ? 'Enabled' : 'Disabled'} · {integration.status}
        </dd>
        <dt>Last success</dt>
        <dd>{formatDateTime(integration.lastSuccessAt)}</dd>
        <dt>Next syncs</dt>
        <dd>
          Changes {formatDateTime(integration.nextSyncs.delta)} · All {formatDateTime(integration.nextSyncs.full)}
        </dd>
        {integration.description === '' ? null : (
          <>
            <dt>Description</dt>
            <dd>{integration.description}</dd>
          </>
        )}
      </dl>
      {can('sync') ? (
        <div className="toolbar" role="group" aria-label="Actions">
          <button type="button" onClick={() => void testConnection()} aria-disabled={test?.running === true}>
            Test Connection
          </button>
          <button type="button" disabled={!integration.enabled} onClick={() => void sync('full', false)}>
            Sync All
          </button>
          <button type="button" className="secondary" disabled={!integration.enabled} onClick={() => void sync('delta', false)}>
            Sync changes
          </button>
          <button type="button" className="secondary" disabled={!integration.enabled} onClick={() => void sync('full', true)}>
            Dry run
          </button>
          {can('admin') ? (
            <button type="button" className="secondary" onClick={() => void toggle()}>
              {integration.enabled ? 'Disable' : 'Enable'}
            </button>
          ) : null}
        </div>
      ) : (
        <p className="muted">Your role can read this integration; syncing it needs an operator.</p>
      )}
      {integration.enabled ? null : <p className="muted">The integration is disabled: enable it to sync.</p>}
      {integration.kind === 'entra_id' && typeof integration.settings['legacyApp'] === 'object' && integration.settings['legacyApp'] !== null ? (
        <div className="message message-warn">
          <p>
            This integration still uses its own Azure app registration and client secret. Move it to a connector before the migration deadline (see Actions
            needed).
          </p>
          {can('admin') ? <Link to={`/connectors?migrate=${integration.id}`}>Migrate {integration.name} to a connector</Link> : null}
        </div>
      ) : null}
      {actionError === undefined ? null : <ErrorMessage>{actionError}</ErrorMessage>}
      <RunProgressList watched={watched} onFinal={onFinal} />
      <TestConnectionResult state={test} />
      {can('admin') && passwordKinds.has(integration.kind) ? <PasswordForm integration={integration} /> : null}
      <RunsSection integrationId={integration.id} generation={runsGeneration} />
      <SettingsForm key={integration.id} integration={integration} onSaved={setIntegration} />
    </>
  );
}
