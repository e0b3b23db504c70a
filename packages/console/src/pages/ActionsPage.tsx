import { Link } from 'react-router';
import { Loading } from '../components/Messages.tsx';
import { PageTitle } from '../components/PageTitle.tsx';
import { formatDateTime } from '../format.ts';
import { useConsole } from '../session.tsx';
import type { Action } from '../types.ts';

const titles: Record<Action['type'], string> = {
  blocked_run: 'Deletions waiting for approval',
  failing: 'Syncs failing',
  credential_failed: 'Password refused by the directory',
  missing_secret: 'No password stored',
  legacy_integration: 'Migrate to a connector',
  never_synced: 'Never synced',
  grant_consent: 'Consent needed',
  connector_rotation_failed: 'Certificate rotation failed',
  certificate_expiring: 'Certificate expiring',
  delete_old_app_registration: 'Remove the old Azure app',
  webhook_disabled: 'Webhook endpoint disabled',
};

function NextStep({ action }: { action: Action }) {
  switch (action.type) {
    case 'legacy_integration':
      return (
        <Link className="button" to={`/connectors?migrate=${action.integrationId}`}>
          Migrate now
        </Link>
      );
    case 'blocked_run':
    case 'failing':
    case 'never_synced':
      return action.runId === null ? (
        <Link to={`/integrations/${action.integrationId}`}>Open {action.integrationName}</Link>
      ) : (
        <Link to={`/runs/${action.runId}`}>View the run of {action.integrationName}</Link>
      );
    case 'credential_failed':
    case 'missing_secret':
      return <Link to={`/integrations/${action.integrationId}#password`}>Enter the password of {action.integrationName}</Link>;
    case 'grant_consent':
    case 'connector_rotation_failed':
    case 'certificate_expiring':
      return <Link to="/connectors">Open Connectors</Link>;
    case 'webhook_disabled':
      // No console page for webhooks: the API and the CLI manage them.
      return <code>dirsync webhooks update {action.webhookId ?? ''} --enable</code>;
    default:
      return <Link to={`/integrations/${action.integrationId}`}>Open {action.integrationName}</Link>;
  }
}

/** `/console/actions`: what the account's administrators should do. */
export function ActionsPage() {
  const { actions } = useConsole();
  return (
    <>
      <PageTitle title="Actions needed">Actions needed</PageTitle>
      {actions === undefined ? (
        <Loading what="actions" />
      ) : actions.length === 0 ? (
        <p>Nothing needs your attention.</p>
      ) : (
        <ul className="card-list" aria-label="Actions needed">
          {actions.map((action, i) => (
            <li key={`${action.type}-${action.integrationId}-${i}`} className={`card action-${action.type}`}>
              <h2>
                {titles[action.type]}: {action.integrationName}
              </h2>
              <p>{action.detail}</p>
              {action.type === 'legacy_integration' && action.deadline !== undefined && action.deadline !== null ? (
                <p className={action.overdue === true ? 'field-error' : 'deadline'}>
                  {action.overdue === true ? 'Migration deadline passed: ' : 'Migration deadline: '}
                  <strong>{formatDateTime(action.deadline)}</strong>
                </p>
              ) : null}
              {action.since === null ? null : <p className="muted">Since {formatDateTime(action.since)}</p>}
              <NextStep action={action} />
            </li>
          ))}
        </ul>
      )}
    </>
  );
}
