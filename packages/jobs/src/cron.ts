import { createHash } from 'node:crypto';
import { CronExpressionParser } from 'cron-parser';

/** Delta sync every 5 minutes (the column default in `integrations.delta_cron`). */
export const DEFAULT_DELTA_CRON = '*/5 * * * *';
/** Full sync daily at 02:00 (the column default in `integrations.full_cron`). */
export const DEFAULT_FULL_CRON = '0 2 * * *';
/** Time zone schedules are read in unless the scheduler is given another. */
export const DEFAULT_SCHEDULE_TIMEZONE = 'UTC';

/** Result of {@link validateCron}. */
export type CronValidation = { ok: true; expression: string } | { ok: false; message: string };

/** A cron expression that cannot be used as a sync schedule. */
export class InvalidCronError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidCronError';
  }
}

const aliases = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@hourly', '@weekdays', '@weekends']);
// cron-parser's "H" picks a pseudo-random value per parse unless seeded, so replicas would
// disagree on the slot; refusing it keeps due slots deterministic.
const hashToken = /(^|[^a-z])h(?![a-z])/i;

function quoted(expression: string): string {
  return JSON.stringify(expression);
}

/**
 * Checks that `expression` is a standard five-field cron (minute hour day-of-month month
 * day-of-week, names like MON/JAN allowed) or one of @yearly, @annually, @monthly, @weekly,
 * @daily, @hourly, @weekdays, @weekends, and that it fires at some time. Seconds fields and
 * hashed "H" values are refused. The message names the expression and the reason.
 */
export function validateCron(expression: string): CronValidation {
  if (typeof expression !== 'string' || expression.trim() === '') {
    return { ok: false, message: 'cron expression is empty' };
  }
  const spaced = expression.trim().replace(/\s+/g, ' ');
  // cron-parser only knows lower-case aliases.
  const trimmed = spaced.startsWith('@') ? spaced.toLowerCase() : spaced;
  if (trimmed.startsWith('@')) {
    if (!aliases.has(trimmed)) {
      return { ok: false, message: `${quoted(trimmed)} is not a supported cron alias (use one of ${[...aliases].join(', ')})` };
    }
  } else {
    const fields = trimmed.split(' ').length;
    if (fields !== 5) {
      return {
        ok: false,
        message: `${quoted(trimmed)} has ${fields} field${fields === 1 ? '' : 's'}; a schedule needs 5 (minute hour day-of-month month day-of-week)`,
      };
    }
    if (hashToken.test(trimmed)) {
      return { ok: false, message: `${quoted(trimmed)} uses "H", which is not supported; give explicit values` };
    }
  }
  try {
    const parsed = CronExpressionParser.parse(trimmed, { tz: DEFAULT_SCHEDULE_TIMEZONE });
    // Parsing accepts some expressions that never fire; asking for both neighbours catches them.
    parsed.next();
    parsed.reset();
    parsed.prev();
  } catch (error) {
    return { ok: false, message: `${quoted(trimmed)} is not a valid cron expression: ${(error as Error).message}` };
  }
  return { ok: true, expression: trimmed };
}

// A tick evaluates every due integration, mostly with the same few expressions: validating each
// one once keeps a 10,000-integration tick from parsing every cron twice more per mode.
const validations = new Map<string, CronValidation>();
const validationCacheLimit = 1_000;

function validated(expression: string): string {
  let validation = validations.get(expression);
  if (validation === undefined) {
    validation = validateCron(expression);
    if (validations.size >= validationCacheLimit) validations.clear();
    validations.set(expression, validation);
  }
  if (!validation.ok) throw new InvalidCronError(validation.message);
  return validation.expression;
}

// Parsing a cron and stepping it costs about a tenth of a millisecond, and a tick asks about the
// same few expressions for thousands of integrations at times that differ only by their jitter
// offsets (all within one interval of the tick's time). Each answer found is a pair of
// consecutive slots [start, end): every time in it has `start` as its latest slot and `end` as
// its next one, so the pairs are kept (the last few per expression and time zone).
interface SlotPair {
  readonly start: number;
  readonly end: number;
}
const pairsPerExpression = 8;
const pairCacheLimit = 1_000;
const slotPairs = new Map<string, SlotPair[]>();

function slotPairAt(expression: string, at: Date, tz: string): SlotPair {
  const key = `${expression}\n${tz}`;
  const time = at.getTime();
  const known = slotPairs.get(key);
  const hit = known?.find((pair) => pair.start <= time && time < pair.end);
  if (hit !== undefined) return hit;
  let pair: SlotPair;
  try {
    // prev() is strictly before its start; starting 1 ms later makes a slot at `at` count.
    const start = CronExpressionParser.parse(expression, { currentDate: new Date(time + 1), tz }).prev().getTime();
    const end = CronExpressionParser.parse(expression, { currentDate: at, tz }).next().getTime();
    pair = { start, end };
  } catch (error) {
    throw new InvalidCronError(`no slot of ${quoted(expression)} around ${at.toISOString()} (${tz}): ${(error as Error).message}`);
  }
  const pairs = known ?? [];
  pairs.push(pair);
  if (pairs.length > pairsPerExpression) pairs.shift();
  if (known === undefined) {
    if (slotPairs.size >= pairCacheLimit) slotPairs.clear();
    slotPairs.set(key, pairs);
  }
  return pair;
}

/**
 * The latest time `expression` fires at or before `now` (a slot exactly at `now` is due), read
 * in time zone `tz` (an IANA name, default UTC). Throws {@link InvalidCronError}.
 */
export function latestDueSlot(expression: string, now: Date, tz: string = DEFAULT_SCHEDULE_TIMEZONE): Date {
  const valid = validated(expression);
  if (Number.isNaN(now.getTime())) throw new RangeError('now is not a valid date');
  return new Date(slotPairAt(valid, now, tz).start);
}

/**
 * The first time `expression` fires strictly after `after`, read in time zone `tz` (default
 * UTC). Throws {@link InvalidCronError}.
 */
export function nextSlotAfter(expression: string, after: Date, tz: string = DEFAULT_SCHEDULE_TIMEZONE): Date {
  const valid = validated(expression);
  if (Number.isNaN(after.getTime())) throw new RangeError('after is not a valid date');
  return new Date(slotPairAt(valid, after, tz).end);
}

// Fixed, so every replica (and every run of the tests) measures an expression's interval alike.
const intervalReference = new Date('2024-01-01T00:00:00Z');
const intervalSamples = 16;
const intervals = new Map<string, number>();

/**
 * The shortest gap between consecutive firings of `expression`, in milliseconds: the smallest of
 * the first gaps after a fixed reference date, read in UTC (a five-minute step gives 5 minutes,
 * `0 2 * * *` a day, `15,45 8-18 * * *` 30 minutes). Used to keep a jitter offset within one
 * interval. Throws {@link InvalidCronError}.
 */
export function cronIntervalMs(expression: string): number {
  const valid = validated(expression);
  const known = intervals.get(valid);
  if (known !== undefined) return known;
  const parsed = CronExpressionParser.parse(valid, { currentDate: intervalReference, tz: DEFAULT_SCHEDULE_TIMEZONE });
  let previous = parsed.next().getTime();
  let shortest = Number.POSITIVE_INFINITY;
  for (let i = 0; i < intervalSamples; i++) {
    const next = parsed.next().getTime();
    shortest = Math.min(shortest, next - previous);
    previous = next;
  }
  if (intervals.size >= validationCacheLimit) intervals.clear();
  intervals.set(valid, shortest);
  return shortest;
}

/** Schedule fields as stored on an integration. */
export interface ScheduleInput {
  deltaCron?: string | undefined;
  fullCron?: string | undefined;
}

/** One problem found by {@link validateSchedule}. */
export interface ScheduleProblem {
  field: 'deltaCron' | 'fullCron';
  message: string;
}

/** Result of {@link validateSchedule}; `message` is one line fit for a CLI error. */
export type ScheduleValidation =
  | { ok: true; deltaCron?: string; fullCron?: string }
  | { ok: false; message: string; problems: ScheduleProblem[] };

/**
 * Validates the delta and full crons given (an omitted field is not checked, so an update of one
 * of them can be validated alone). The normalised expressions are returned when valid.
 */
export function validateSchedule(input: ScheduleInput): ScheduleValidation {
  const problems: ScheduleProblem[] = [];
  const valid: { deltaCron?: string; fullCron?: string } = {};
  for (const field of ['deltaCron', 'fullCron'] as const) {
    const value = input[field];
    if (value === undefined) continue;
    const result = validateCron(value);
    if (result.ok) valid[field] = result.expression;
    else problems.push({ field, message: result.message });
  }
  if (problems.length > 0) {
    const label = { deltaCron: 'delta schedule', fullCron: 'full schedule' } as const;
    return { ok: false, problems, message: problems.map((p) => `${label[p.field]}: ${p.message}`).join('; ') };
  }
  return { ok: true, ...valid };
}

/** Longest jitter offset by default: one hour (fulls of an hourly delta spread over that hour). */
export const DEFAULT_JITTER_MAX_MS = 3_600_000;

/**
 * Where in [0, 1) the integration's id hashes to: the first 48 bits of its SHA-256. The same id
 * always lands on the same point, on every replica and after every restart.
 */
export function jitterFraction(integrationId: string): number {
  const digest = createHash('sha256').update(integrationId).digest();
  return digest.readUIntBE(0, 6) / 2 ** 48;
}

/**
 * The stable jitter of an integration: how long after each of its cron slots the slot falls due.
 * One offset serves both modes, so a full and a delta slot of the same minute still fall due
 * together and the full supersedes the delta. It lies within the shorter of the two cron
 * intervals (never reaching the next slot) and below `maxMs`, in whole seconds:
 * `floor(jitterFraction(id) × min(delta interval, full interval, maxMs))`. With the default
 * crons (deltas every 5 minutes) 10,000 integrations spread evenly over the 5 minutes after
 * each slot instead of falling due in the same second. `maxMs` 0 turns jitter off.
 * Throws `InvalidCronError`.
 */
export function jitterOffsetMs(integrationId: string, crons: { readonly deltaCron: string; readonly fullCron: string }, maxMs: number = DEFAULT_JITTER_MAX_MS): number {
  if (maxMs <= 0) return 0;
  const span = Math.min(cronIntervalMs(crons.deltaCron), cronIntervalMs(crons.fullCron), maxMs);
  return Math.floor((jitterFraction(integrationId) * span) / 1000) * 1000;
}
