import { useCallback, useEffect, useState } from 'react';
import { Link, useParams } from 'react-router';
import { api } from '../api.ts';
import { ErrorMessage, Loading, notFoundTitle } from '../components/Messages.tsx';
import { PageTitle } from '../components/PageTitle.tsx';
import { RunProgressList, type WatchedRun } from '../components/RunProgress.tsx';
import { finalRunStatuses, formatCount, formatDateTime, formatDuration, runStatusText } from '../format.ts';
import { useLoad, useRunWatch } from '../hooks.ts';
import { messageOf } from '../problem.ts';
import { useConsole } from '../session.tsx';
import type { Run, RunChange, RunIssue } from '../types.ts';

// Long lists are cut so the page stays readable; the rest is one click away.
const shownAtFirst = 200;

function ChangeList({ title, id, items }: { title: string; id: string; items: readonly RunChange[] }) {
  const [all, setAll] = useState(false);
  const shown = all ? items : items.slice(0, shownAtFirst);
  return (
    <section>
      <h2 id={id}>
        {title} <span className="muted">({formatCount(items.length)})</span>
      </h2>
      {items.length === 0 ? (
        <p className="muted">None.</p>
      ) : (
        <ul className="object-list" aria-label={title}>
          {shown.map((change) => (
            <li key={`${change.type}:${change.externalId}`}>
              <span className="mono">{change.dn ?? change.externalId}</span> <span className="muted">({change.type})</span>
            </li>
          ))}
        </ul>
      )}
      {shown.length < items.length ? (
        <button type="button" className="secondary" onClick={() => setAll(true)}>
          Show all {formatCount(items.length)} {title.toLowerCase()}
        </button>
      ) : null}
    </section>
  );
}

function IssueList({ items, total }: { items: readonly RunIssue[]; total: number }) {
  return (
    <section>
      <h2 id="issues-heading">
        Issues <span className="muted">({formatCount(total)})</span>
      </h2>
      {items.length === 0 ? (
        <p className="muted">None.</p>
      ) : (
        <ul className="object-list" aria-label="Issues">
          {items.map((issue, i) => (
            <li key={i}>
              {issue.dn === undefined && issue.externalId === undefined ? null : <span className="mono">{issue.dn ?? issue.externalId}</span>}
              {issue.dn === undefined && issue.externalId === undefined ? '' : ': '}
              {issue.reason}
            </li>
          ))}
        </ul>
      )}
      {total > items.length ? <p className="muted">The first {formatCount(items.length)} issues are shown.</p> : null}
    </section>
  );
}

const countLabels: Array<[keyof Run['counts'], string]> = [
  ['fetched', 'Read'],
  ['created', 'Created'],
  ['updated', 'Updated'],
  ['unchanged', 'Unchanged'],
  ['deleted', 'Deleted'],
  ['restored', 'Restored'],
  ['failed', 'Failed'],
  ['membershipsAdded', 'Memberships added'],
  ['membershipsRemoved', 'Memberships removed'],
  ['wouldDelete', 'Would delete'],
];

function RunDetails({ run, integrationName }: { run: Run; integrationName: string | undefined }) {
  const mode = run.mode ?? run.modeRequested;
  return (
    <>
      <dl className="facts">
        <dt>Integration</dt>
        <dd>
          <Link to={`/integrations/${run.integrationId}`}>{integrationName ?? 'Open the integration'}</Link>
        </dd>
        <dt>Status</dt>
        <dd>{runStatusText(run.status)}</dd>
        <dt>Mode</dt>
        <dd>
          {mode === 'full' ? 'Sync All (full)' : 'Sync changes (delta)'}
          {run.dryRun ? ', dry run: nothing written' : ''}
        </dd>
        <dt>Trigger</dt>
        <dd>
          {run.trigger.replace('_', ' ')}
          {run.requestedBy === null ? '' : ` by ${run.requestedBy}`}
        </dd>
        <dt>Queued</dt>
        <dd>{formatDateTime(run.queuedAt)}</dd>
        <dt>Started</dt>
        <dd>{formatDateTime(run.startedAt)}</dd>
        <dt>Finished</dt>
        <dd>{formatDateTime(run.finishedAt)}</dd>
        <dt>Duration</dt>
        <dd>{formatDuration(run.durationMs)}</dd>
        <dt>Attempts</dt>
        <dd>
          {run.attempt}
          {run.maxAttempts === null ? '' : ` of ${run.maxAttempts}`}
        </dd>
        {run.error === null ? null : (
          <>
            <dt>Error</dt>
            <dd className="field-error">{run.error}</dd>
          </>
        )}
        {run.lastError === null || run.lastError === run.error ? null : (
          <>
            <dt>Last attempt's error</dt>
            <dd>{run.lastError}</dd>
          </>
        )}
        {run.approvedAt === null ? null : (
          <>
            <dt>Deletions approved</dt>
            <dd>
              {formatDateTime(run.approvedAt)}
              {run.approvedBy === null ? '' : ` by ${run.approvedBy}`}
            </dd>
          </>
        )}
      </dl>
      <h2>Counts</h2>
      <dl className="facts counts">
        {countLabels.map(([key, label]) => (
          <div key={key} className="fact-pair">
            <dt>{label}</dt>
            <dd>{formatCount(run.counts[key])}</dd>
          </div>
        ))}
      </dl>
    </>
  );
}

/** `/console/runs/:id`: a run report, what it changed, its issues, and approval of blocked deletions. */
export function RunPage() {
  const { id = '' } = useParams();
  const { can, refreshActions } = useConsole();
  const loaded = useLoad(() => api.run(id), [id]);
  const [run, setRun] = useState<Run | undefined>(undefined);
  const [integrationName, setIntegrationName] = useState<string | undefined>(undefined);
  const [approval, setApproval] = useState<{ busy: boolean; error?: string; done?: boolean }>({ busy: false });
  const [followUp, setFollowUp] = useState<WatchedRun[]>([]);
  const [detailsGeneration, setDetailsGeneration] = useState(0);

  useEffect(() => {
    if (loaded.data !== undefined) setRun(loaded.data);
  }, [loaded.data]);

  // An unfinished run is followed here until it ends.
  const followed = run !== undefined && !finalRunStatuses.has(run.status) ? run.id : undefined;
  const onFinal = useCallback(
    (final: Run) => {
      setRun(final);
      setDetailsGeneration((g) => g + 1);
      refreshActions();
    },
    [refreshActions],
  );
  useRunWatch(followed, onFinal);

  const integrationId = run?.integrationId;
  useEffect(() => {
    if (integrationId === undefined) return;
    api.integration(integrationId).then(
      (integration) => setIntegrationName(integration.name),
      () => undefined,
    );
  }, [integrationId]);

  const changes = useLoad(() => api.runChanges(id), [id, detailsGeneration]);
  const issues = useLoad(() => api.runIssues(id), [id, detailsGeneration]);

  if (run === undefined) {
    return loaded.error === undefined ? (
      <Loading what="the run" />
    ) : (
      <>
        <PageTitle title={notFoundTitle(loaded.error, 'Run')}>{notFoundTitle(loaded.error, 'Run')}</PageTitle>
        <ErrorMessage error={loaded.error} />
      </>
    );
  }

  const approve = async () => {
    if (approval.busy) return;
    setApproval({ busy: true });
    try {
      setRun(await api.approve(run.id));
      setApproval({ busy: false, done: true });
      refreshActions();
    } catch (error) {
      setApproval({ busy: false, error: messageOf(error) });
    }
  };

  const mode = run.mode ?? run.modeRequested;
  const rerunLabel = mode === 'full' ? 'Sync All' : 'Sync changes';
  const rerun = async () => {
    try {
      const answer = await api.sync(run.integrationId, mode);
      setFollowUp([{ runId: answer.runId, integrationName: integrationName ?? 'the integration', label: rerunLabel }]);
    } catch (error) {
      setApproval((a) => ({ ...a, error: messageOf(error) }));
    }
  };

  const all = changes.data?.items ?? [];
  const title = `Run of ${integrationName ?? 'integration'}, ${formatDateTime(run.queuedAt)}`;
  return (
    <>
      <PageTitle title={title}>{title}</PageTitle>
      {finalRunStatuses.has(run.status) ? null : (
        <p role="status" className="message message-warn">
          {runStatusText(run.status)}: this page follows the run until it ends.
        </p>
      )}
      {run.status === 'blocked' ? (
        <section className="panel" aria-labelledby="approval-heading">
          <h2 id="approval-heading">Deletions waiting for approval</h2>
          <p>
            This run would delete {formatCount(run.counts.wouldDelete)} objects, more than the integration's threshold allows, so it deleted nothing.
            {run.approvedAt === null ? ' Approve the deletions to let the next run of this mode make them.' : ''}
          </p>
          {run.approvedAt === null ? (
            can('admin') ? (
              <button type="button" className="danger" aria-disabled={approval.busy} onClick={() => void approve()}>
                Approve deletions
              </button>
            ) : (
              <p className="muted">Only administrators of the account can approve deletions.</p>
            )
          ) : (
            <>
              <p role="status" className="message message-ok">
                Deletions approved{approval.done === true ? '' : ` ${formatDateTime(run.approvedAt)}`}: the next {rerunLabel} may delete them.
              </p>
              {can('sync') ? (
                <button type="button" onClick={() => void rerun()}>
                  {rerunLabel} now
                </button>
              ) : null}
            </>
          )}
          {approval.error === undefined ? null : <ErrorMessage>{approval.error}</ErrorMessage>}
          <RunProgressList watched={followUp} onFinal={refreshActions} />
        </section>
      ) : null}
      <RunDetails run={run} integrationName={integrationName} />
      {changes.error === undefined ? null : <ErrorMessage error={changes.error} />}
      {changes.data === undefined && changes.error === undefined ? <Loading what="changed objects" /> : null}
      <div className="change-lists">
        <ChangeList title="Created" id="created-heading" items={all.filter((c) => c.change === 'created')} />
        <ChangeList title="Updated" id="updated-heading" items={all.filter((c) => c.change === 'updated')} />
        <ChangeList title="Deleted" id="deleted-heading" items={all.filter((c) => c.change === 'deleted')} />
      </div>
      {changes.data?.nextCursor === null || changes.data === undefined ? null : <p className="muted">The first {formatCount(all.length)} changed objects are shown.</p>}
      {issues.error === undefined ? null : <ErrorMessage error={issues.error} />}
      <IssueList items={issues.data?.items ?? []} total={run.issueCount} />
    </>
  );
}
