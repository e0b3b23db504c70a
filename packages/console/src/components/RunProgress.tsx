import { Link } from 'react-router';
import { countsSummary, formatDuration, runStatusText } from '../format.ts';
import { useRunWatch } from '../hooks.ts';
import { messageOf } from '../problem.ts';
import type { Run } from '../types.ts';

/** A sync being followed: which run, and what to call it. */
export interface WatchedRun {
  readonly runId: string;
  readonly integrationName: string;
  /** `Sync All`, `Sync changes`, `Dry run`. */
  readonly label: string;
}

/** What a followed run's line says: label, status, then counts once it ends. */
export function progressText(watched: WatchedRun, run: Run | undefined): string {
  const head = `${watched.label} of ${watched.integrationName}`;
  if (run === undefined) return `${head}: requested`;
  const status = runStatusText(run.status);
  switch (run.status) {
    case 'queued':
      return `${head}: queued, waiting for a worker`;
    case 'running':
      return `${head}: running${run.counts.fetched > 0 ? `, ${run.counts.fetched} entries read` : ''}`;
    case 'retrying':
      return `${head}: retrying (attempt ${run.attempt}${run.maxAttempts === null ? '' : ` of ${run.maxAttempts}`} failed: ${run.lastError ?? 'no error recorded'})`;
    case 'failed':
      return `${head}: failed — ${run.error ?? 'no error recorded'}`;
    default:
      return `${head}: ${status} — ${countsSummary(run.counts)} in ${formatDuration(run.durationMs)}`;
  }
}

/** One line of live progress, read until the run ends; `onFinal` runs once it has. */
export function RunProgressLine({ watched, onFinal }: { watched: WatchedRun; onFinal?: (run: Run) => void }) {
  const { run, error } = useRunWatch(watched.runId, onFinal);
  return (
    <li className={`progress-line status-${run?.status ?? 'requested'}`}>
      <span>{progressText(watched, run)}</span> <Link to={`/runs/${watched.runId}`}>View run</Link>
      {error === undefined ? null : <span className="field-error"> (cannot read the run: {messageOf(error)})</span>}
    </li>
  );
}

/** The status region listing the runs a page follows (role=status: changes are announced politely). */
export function RunProgressList({ watched, onFinal }: { watched: readonly WatchedRun[]; onFinal?: (run: Run) => void }) {
  return (
    <div role="status" className="progress" aria-label="Sync progress">
      {watched.length === 0 ? null : (
        <ul>
          {watched.map((w) => (
            <RunProgressLine key={w.runId} watched={w} {...(onFinal === undefined ? {} : { onFinal })} />
          ))}
        </ul>
      )}
    </div>
  );
}
