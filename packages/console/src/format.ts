// Pure formatting helpers of the console's pages (tested in test/format.test.ts).

/** A duration in words: `850 ms`, `12.4 s`, `3 min 5 s`, `2 h 4 min`. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  const totalSeconds = Math.round(seconds);
  const minutes = Math.floor(totalSeconds / 60);
  if (minutes < 60) {
    const rest = totalSeconds % 60;
    return rest === 0 ? `${minutes} min` : `${minutes} min ${rest} s`;
  }
  const hours = Math.floor(minutes / 60);
  const restMinutes = minutes % 60;
  return restMinutes === 0 ? `${hours} h` : `${hours} h ${restMinutes} min`;
}

/** A count with thousands separators (`12,345`), locale-independent so tests and pages agree. */
export function formatCount(value: number): string {
  return String(Math.trunc(value)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** `1 user`, `3 users`. */
export function plural(count: number, singular: string, pluralForm = `${singular}s`): string {
  return `${formatCount(count)} ${count === 1 ? singular : pluralForm}`;
}

const pad = (n: number) => String(n).padStart(2, '0');

/** A date-time as `2026-12-06 14:05 UTC`; `—` when absent. UTC so every reader sees the same time. */
export function formatDateTime(iso: string | null | undefined): string {
  if (iso === null || iso === undefined) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '—';
  return `${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())} UTC`;
}

/** How far `iso` lies from `now`: `in 5 min`, `3 h ago`, `just now`. */
export function formatRelative(iso: string | null | undefined, now: Date): string {
  if (iso === null || iso === undefined) return '—';
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return '—';
  const diff = at - now.getTime();
  const abs = Math.abs(diff);
  if (abs < 45_000) return 'just now';
  const units: Array<[number, string]> = [
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'min'],
  ];
  const [size, unit] = units.find(([s]) => abs >= s) ?? [60_000, 'min'];
  const amount = Math.round(abs / size);
  return diff > 0 ? `in ${amount} ${unit}` : `${amount} ${unit} ago`;
}

const dayNames = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

function timeOf(hour: string, minute: string): string | undefined {
  if (!/^\d{1,2}$/.test(hour) || !/^\d{1,2}$/.test(minute)) return undefined;
  return `${pad(Number(hour))}:${pad(Number(minute))} UTC`;
}

/**
 * A cron expression in words for the common shapes (`every 15 minutes`, `daily at 02:00 UTC`,
 * `Sundays at 03:30 UTC`); anything else is shown as written, prefixed `cron`.
 */
export function describeCron(expression: string): string {
  const fields = expression.trim().split(/\s+/);
  // Six fields: seconds first (the scheduler accepts both); a fixed 0 second reads as five.
  const five = fields.length === 6 && fields[0] === '0' ? fields.slice(1) : fields;
  if (five.length !== 5) return `cron ${expression}`;
  const [minute = '', hour = '', dom = '', month = '', dow = ''] = five;
  const everyDay = dom === '*' && month === '*' && dow === '*';
  const stepMinutes = /^\*\/(\d+)$/.exec(minute);
  if (stepMinutes && hour === '*' && everyDay) return Number(stepMinutes[1]) === 1 ? 'every minute' : `every ${stepMinutes[1]} minutes`;
  if (minute === '*' && hour === '*' && everyDay) return 'every minute';
  const stepHours = /^\*\/(\d+)$/.exec(hour);
  if (/^\d{1,2}$/.test(minute) && stepHours && everyDay) {
    return `every ${stepHours[1] === '1' ? 'hour' : `${stepHours[1]} hours`} at minute ${Number(minute)}`;
  }
  if (/^\d{1,2}$/.test(minute) && hour === '*' && everyDay) return `hourly at minute ${Number(minute)}`;
  const time = timeOf(hour, minute);
  if (time !== undefined && everyDay) return `daily at ${time}`;
  if (time !== undefined && dom === '*' && month === '*' && /^[0-7]$/.test(dow)) return `${dayNames[Number(dow) % 7]}s at ${time}`;
  if (time !== undefined && /^\d{1,2}$/.test(dom) && month === '*' && dow === '*') return `monthly on day ${Number(dom)} at ${time}`;
  return `cron ${expression}`;
}

/** Words for a run status. */
export function runStatusText(status: string): string {
  switch (status) {
    case 'queued':
      return 'Queued';
    case 'running':
      return 'Running';
    case 'retrying':
      return 'Retrying';
    case 'succeeded':
      return 'Succeeded';
    case 'failed':
      return 'Failed';
    case 'blocked':
      return 'Blocked: deletions need approval';
    case 'dry_run':
      return 'Dry run finished';
    default:
      return status;
  }
}

/** Run statuses after which nothing changes. */
export const finalRunStatuses: ReadonlySet<string> = new Set(['succeeded', 'failed', 'blocked', 'dry_run']);

/** Words for an integration kind. */
export function kindText(kind: string): string {
  switch (kind) {
    case 'ldap':
      return 'LDAP';
    case 'active_directory':
      return 'Active Directory';
    case 'domino':
      return 'Domino';
    case 'entra_id':
      return 'Microsoft Entra ID';
    default:
      return kind;
  }
}

/** A run's counts in one line: `3 created, 1 updated, 2 deleted` (zeros left out; `no changes`). */
export function countsSummary(counts: { created: number; updated: number; deleted: number; restored: number; failed: number; wouldDelete: number }): string {
  const parts: string[] = [];
  if (counts.created > 0) parts.push(`${formatCount(counts.created)} created`);
  if (counts.updated > 0) parts.push(`${formatCount(counts.updated)} updated`);
  if (counts.restored > 0) parts.push(`${formatCount(counts.restored)} restored`);
  if (counts.deleted > 0) parts.push(`${formatCount(counts.deleted)} deleted`);
  if (counts.wouldDelete > 0) parts.push(`${formatCount(counts.wouldDelete)} would be deleted`);
  if (counts.failed > 0) parts.push(`${formatCount(counts.failed)} failed`);
  return parts.length === 0 ? 'no changes' : parts.join(', ');
}
