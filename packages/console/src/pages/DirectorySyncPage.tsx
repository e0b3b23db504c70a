import { useCallback, useEffect, useState } from 'react';
import { Link, useLocation } from 'react-router';
import { api } from '../api.ts';
import { ErrorMessage, Loading } from '../components/Messages.tsx';
import { PageTitle } from '../components/PageTitle.tsx';
import { RunProgressList, type WatchedRun } from '../components/RunProgress.tsx';
import { countsSummary, formatDateTime, formatDuration, formatRelative, kindText, runStatusText } from '../format.ts';
import { useLoad } from '../hooks.ts';
import { messageOf } from '../problem.ts';
import { useConsole } from '../session.tsx';
import type { Integration, SyncMode } from '../types.ts';

/** Navigation state other pages hand over: a run to follow here (after Save and Exit, a first sync). */
export interface DirectorySyncState {
  readonly watch?: WatchedRun;
  readonly notice?: string;
}

function LastRunCell({ integration }: { integration: Integration }) {
  const run = integration.lastRun;
  if (run === null) return <span className="muted">Never synced</span>;
  return (
    <>
      <Link to={`/runs/${run.id}`}>{runStatusText(run.status)}</Link>
      <span className="cell-detail">
        {run.dryRun ? 'dry run, ' : ''}
        {run.mode === 'full' ? 'Sync All' : 'Sync changes'} · {countsSummary(run.counts)} · {formatDuration(run.durationMs)}
      </span>
      <span className="cell-detail">{formatDateTime(run.finishedAt ?? run.startedAt ?? run.queuedAt)}</span>
    </>
  );
}

function NextSyncsCell({ integration, now }: { integration: Integration; now: Date }) {
  if (!integration.enabled) return <span className="muted">Disabled</span>;
  const { delta, full } = integration.nextSyncs;
  return (
    <>
      <span className="cell-detail">
        Changes: {formatRelative(delta, now)} <span className="muted">({formatDateTime(delta)})</span>
      </span>
      <span className="cell-detail">
        All: {formatRelative(full, now)} <span className="muted">({formatDateTime(full)})</span>
      </span>
    </>
  );
}

/** `/console/`: the account's integrations with their last run and next syncs, Sync All and Sync changes. */
export function DirectorySyncPage() {
  const { account, can, refreshActions } = useConsole();
  const location = useLocation();
  const handed = (location.state ?? {}) as DirectorySyncState;
  const integrations = useLoad(() => api.integrations(), []);
  const [watched, setWatched] = useState<WatchedRun[]>(() => (handed.watch === undefined ? [] : [handed.watch]));
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState<string | undefined>(undefined);
  const [now, setNow] = useState(() => new Date());

  useEffect(() => {
    const timer = setInterval(() => setNow(new Date()), 30_000);
    return () => clearInterval(timer);
  }, []);

  const { reload } = integrations;
  const onFinal = useCallback(() => {
    reload();
    refreshActions();
  }, [reload, refreshActions]);

  const sync = async (integration: Integration, mode: SyncMode) => {
    const label = mode === 'full' ? 'Sync All' : 'Sync changes';
    // A second click while the first request is on its way would only ask again.
    if (busy !== undefined) return;
    setError(undefined);
    setBusy(`${integration.id}:${mode}`);
    try {
      const answer = await api.sync(integration.id, mode);
      setWatched((list) => [{ runId: answer.runId, integrationName: integration.name, label }, ...list.filter((w) => w.runId !== answer.runId)]);
      reload();
    } catch (e) {
      setError(`${label} of ${integration.name} was not started: ${messageOf(e)}`);
    } finally {
      setBusy(undefined);
    }
  };

  const items = integrations.data?.items;
  return (
    <>
      <PageTitle title="Directory Synchronization">Directory Synchronization</PageTitle>
      <div className="page-actions">
        <p className="muted">Integrations of {account.name}</p>
        {can('admin') ? (
          <Link to="/integrations/new" className="button">
            New integration
          </Link>
        ) : null}
      </div>
      {handed.notice === undefined ? null : <p className="message message-ok">{handed.notice}</p>}
      <RunProgressList watched={watched} onFinal={onFinal} />
      {error === undefined ? null : <ErrorMessage>{error}</ErrorMessage>}
      {integrations.error !== undefined ? <ErrorMessage error={integrations.error} /> : null}
      {items === undefined ? (
        integrations.error === undefined ? <Loading what="integrations" /> : null
      ) : items.length === 0 ? (
        <p>No integrations yet.{can('admin') ? ' Select "New integration" to connect a directory.' : ''}</p>
      ) : (
        <table className="data-table integrations-table">
          <caption className="visually-hidden">Integrations</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Kind</th>
              <th scope="col">Status</th>
              <th scope="col">Last run</th>
              <th scope="col">Next syncs</th>
              {can('sync') ? <th scope="col">Sync</th> : null}
            </tr>
          </thead>
          <tbody>
            {items.map((integration) => (
              <tr key={integration.id}>
                <th scope="row" data-label="Name">
                  <Link to={`/integrations/${integration.id}`}>{integration.name}</Link>
                </th>
                <td data-label="Kind">{kindText(integration.kind)}</td>
                <td data-label="Status">{integration.enabled ? integration.status : 'disabled'}</td>
                <td data-label="Last run">
                  <LastRunCell integration={integration} />
                </td>
                <td data-label="Next syncs">
                  <NextSyncsCell integration={integration} now={now} />
                </td>
                {can('sync') ? (
                  <td data-label="Sync">
                    <div className="row-buttons">
                    <button
                      type="button"
                      aria-label={`Sync All: ${integration.name}`}
                      disabled={!integration.enabled}
                      onClick={() => void sync(integration, 'full')}
                    >
                      Sync All
                    </button>
                    <button
                      type="button"
                      className="secondary"
                      aria-label={`Sync changes: ${integration.name}`}
                      disabled={!integration.enabled}
                      onClick={() => void sync(integration, 'delta')}
                    >
                      Sync changes
                    </button>
                    </div>
                  </td>
                ) : null}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
