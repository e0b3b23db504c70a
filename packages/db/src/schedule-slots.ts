import type postgres from 'postgres';
import type { Db } from './client.ts';

/** Slots newer than the ones claimed, per mode (null: nothing new for that mode). */
export interface DueSlots {
  readonly full: Date | null;
  readonly delta: Date | null;
}

/** Slots a claim took, with the values they replaced (to undo the claim if enqueueing fails). */
export interface ClaimedSlots extends DueSlots {
  readonly previousFull: Date | null;
  readonly previousDelta: Date | null;
}

interface ClaimRow {
  take_full: boolean;
  take_delta: boolean;
  previous_full: string | Date | null;
  previous_delta: string | Date | null;
}

// drizzle turns off postgres.js' own date handling on the client it wraps, so raw queries pass
// timestamps as ISO strings and get strings back.
const iso = (value: Date | null) => (value === null ? null : value.toISOString());
const date = (value: string | Date | null) => (value === null ? null : new Date(value));

/**
 * Claims the due full and delta slots of an enabled integration in one statement. Among
 * replicas racing for the same slots exactly one gets them: the row is locked first, and a
 * replica that waited for the lock reads the slots the winner stored, finds nothing newer and
 * claims nothing. Claiming both modes at once keeps "full supersedes delta" whole: no replica
 * can take the delta slot of a tick whose full slot another replica took. Returns null when
 * nothing was claimed (already claimed, disabled or deleted).
 *
 * ({@link claimScheduleSlot} is the one-mode form.)
 */
export async function claimDueSlots(db: Db, integrationId: string, due: DueSlots): Promise<ClaimedSlots | null> {
  return takeNewerSlots(db, integrationId, due, db.$client`enabled`);
}

/**
 * Stores each slot of `slots` newer than the row's as its claimed one, under the row's lock, when
 * the row meets `condition`; returns the slots taken and the values they replaced (null: none).
 * A statement that waited for the lock reads the slots the other one stored, so racing claims and
 * covers each keep the later slot and exactly one takes a given slot.
 */
async function takeNewerSlots(db: Db, integrationId: string, slots: DueSlots, condition: postgres.PendingQuery<postgres.Row[]>): Promise<ClaimedSlots | null> {
  const full = iso(slots.full);
  const delta = iso(slots.delta);
  if (full === null && delta === null) return null;
  const rows = await db.$client<ClaimRow[]>`
    with current_slots as (
      select id, full_scheduled_for, delta_scheduled_for
      from integrations
      where id = ${integrationId} and ${condition}
      for update
    ), decision as (
      select id,
        full_scheduled_for as previous_full,
        delta_scheduled_for as previous_delta,
        coalesce(${full}::timestamptz > full_scheduled_for, ${full}::timestamptz is not null) as take_full,
        coalesce(${delta}::timestamptz > delta_scheduled_for, ${delta}::timestamptz is not null) as take_delta
      from current_slots
    )
    update integrations i set
      full_scheduled_for = case when d.take_full then ${full}::timestamptz else i.full_scheduled_for end,
      delta_scheduled_for = case when d.take_delta then ${delta}::timestamptz else i.delta_scheduled_for end
    from decision d
    where i.id = d.id and (d.take_full or d.take_delta)
    returning d.take_full, d.take_delta, d.previous_full, d.previous_delta`;
  const row = rows[0];
  if (row === undefined) return null;
  return {
    full: row.take_full ? slots.full : null,
    delta: row.take_delta ? slots.delta : null,
    previousFull: date(row.previous_full),
    previousDelta: date(row.previous_delta),
  };
}

/**
 * Undoes a claim whose job could not be enqueued, so a later tick tries again. A slot is only
 * put back while it still holds the claimed value (a later claim is never undone). The row falls
 * due again at `retryAt` (default: at once); a tick passes a time just after its own `now`, so
 * it does not take the row back itself within the same tick.
 */
export async function releaseClaimedSlots(db: Db, integrationId: string, claimed: ClaimedSlots, retryAt?: Date): Promise<void> {
  const [full, delta] = [iso(claimed.full), iso(claimed.delta)];
  const [previousFull, previousDelta] = [iso(claimed.previousFull), iso(claimed.previousDelta)];
  const retry = retryAt === undefined ? '-infinity' : retryAt.toISOString();
  await db.$client`
    update integrations set
      full_scheduled_for = case
        when ${full}::timestamptz is not null and full_scheduled_for = ${full}::timestamptz
        then ${previousFull}::timestamptz else full_scheduled_for end,
      delta_scheduled_for = case
        when ${delta}::timestamptz is not null and delta_scheduled_for = ${delta}::timestamptz
        then ${previousDelta}::timestamptz else delta_scheduled_for end,
      next_due_at = least(next_due_at, ${retry}::timestamptz)
    where id = ${integrationId}`;
}

/** An enabled integration whose next due time has come, as a batch claim reads it (row locked). */
export interface ScheduleCandidate {
  readonly id: string;
  readonly accountId: string;
  readonly deltaCron: string;
  readonly fullCron: string;
  readonly deltaScheduledFor: Date | null;
  readonly fullScheduledFor: Date | null;
}

/** What the scheduler decided for one candidate: the slots to claim and when to look again. */
export interface ScheduleDecision {
  /** Slots to claim; only ones newer than the candidate's claimed slots are taken. */
  readonly due: DueSlots;
  /** When the row is next due for a look; must be later than the claim's `now`. */
  readonly nextDueAt: Date;
}

/** One candidate of a batch and the slots claimed for it (null: nothing new, only re-timed). */
export interface ClaimedCandidate {
  readonly candidate: ScheduleCandidate;
  readonly claimed: ClaimedSlots | null;
}

/** Options of {@link claimDueBatch}. */
export interface ClaimDueBatchOptions {
  /** The tick's time: rows whose `next_due_at` is at or before it are due. */
  readonly now: Date;
  /** Most rows taken in one batch. */
  readonly limit: number;
  /** Works out each candidate's due slots and next due time (called with the row locked). */
  readonly decide: (candidate: ScheduleCandidate) => ScheduleDecision;
}

/** What one batch claim did. */
export interface ClaimedBatch {
  /** Rows taken into the batch (every one of them was re-timed). */
  readonly examined: number;
  readonly claims: ClaimedCandidate[];
}

interface CandidateRow {
  id: string;
  account_id: string;
  delta_cron: string;
  full_cron: string;
  delta_scheduled_for: string | Date | null;
  full_scheduled_for: string | Date | null;
}

/**
 * Claims a batch of due integrations for one scheduler replica. In one transaction it locks up to
 * `limit` enabled rows whose `next_due_at` has come (`FOR UPDATE SKIP LOCKED`, through the partial
 * index on enabled rows), lets `decide` work out each row's due slots from the values it locked,
 * and stores the claimed slots with each row's next due time.
 *
 * Replicas split the work this way rather than by hashing integrations to replicas: a batch
 * locked by one replica is skipped by the others, who take the next rows, so any number of
 * replicas share a tick with no membership to agree on, and a replica that stops or slows down
 * leaves its share to the others on their next batch. Exactly-once holds as with
 * {@link claimDueSlots}: a row is only claimed under its lock, from the slots stored there, and
 * leaves the batch with a later `next_due_at`, so no other replica reads it as due again; both
 * modes are claimed in the same statement, which keeps "full supersedes delta" whole.
 *
 * A tick with nothing due is one index probe returning no row.
 */
export async function claimDueBatch(db: Db, options: ClaimDueBatchOptions): Promise<ClaimedBatch> {
  const now = options.now.toISOString();
  return db.$client.begin(async (sql) => {
    const rows = await sql<CandidateRow[]>`
      select id, account_id, delta_cron, full_cron, delta_scheduled_for, full_scheduled_for
      from integrations
      where enabled and next_due_at <= ${now}::timestamptz
      order by next_due_at
      limit ${options.limit}
      for update skip locked`;
    if (rows.length === 0) return { examined: 0, claims: [] };
    const claims: ClaimedCandidate[] = [];
    const updates: Array<{ id: string; full_slot: string | null; delta_slot: string | null; next_due: string }> = [];
    for (const row of rows) {
      const candidate: ScheduleCandidate = {
        id: row.id,
        accountId: row.account_id,
        deltaCron: row.delta_cron,
        fullCron: row.full_cron,
        deltaScheduledFor: date(row.delta_scheduled_for),
        fullScheduledFor: date(row.full_scheduled_for),
      };
      const decision = options.decide(candidate);
      const isNewer = (slot: Date | null, stored: Date | null) => slot !== null && (stored === null || slot.getTime() > stored.getTime());
      const full = isNewer(decision.due.full, candidate.fullScheduledFor) ? decision.due.full : null;
      const delta = isNewer(decision.due.delta, candidate.deltaScheduledFor) ? decision.due.delta : null;
      // Never due again within this claim's own time, whatever `decide` said.
      const next = Math.max(decision.nextDueAt.getTime(), options.now.getTime() + 1);
      updates.push({ id: row.id, full_slot: iso(full), delta_slot: iso(delta), next_due: new Date(next).toISOString() });
      claims.push({
        candidate,
        claimed:
          full === null && delta === null
            ? null
            : { full, delta, previousFull: candidate.fullScheduledFor, previousDelta: candidate.deltaScheduledFor },
      });
    }
    await sql`
      update integrations i set
        full_scheduled_for = coalesce(v.full_slot, i.full_scheduled_for),
        delta_scheduled_for = coalesce(v.delta_slot, i.delta_scheduled_for),
        next_due_at = v.next_due
      from jsonb_to_recordset(${JSON.stringify(updates)}::jsonb) as v(id uuid, full_slot timestamptz, delta_slot timestamptz, next_due timestamptz)
      where i.id = v.id`;
    return { examined: rows.length, claims };
  });
}

/**
 * Records on a queued run that the full sync which fell due absorbed it (its job now runs full).
 */
export async function markRunUpgradedToFull(db: Db, runId: string): Promise<void> {
  await db.$client`
    update sync_runs set mode_requested = 'full'
    where id = ${runId} and status = 'queued' and mode_requested = 'delta'`;
}

/** The crons an integration's slots are read from. */
export interface IntegrationSchedule {
  readonly deltaCron: string;
  readonly fullCron: string;
}

/** The crons of an integration (undefined: no such integration). */
export async function getIntegrationSchedule(db: Db, integrationId: string): Promise<IntegrationSchedule | undefined> {
  const rows = await db.$client<Array<{ delta_cron: string; full_cron: string }>>`
    select delta_cron, full_cron from integrations where id = ${integrationId}`;
  const row = rows[0];
  return row === undefined ? undefined : { deltaCron: row.delta_cron, fullCron: row.full_cron };
}

/**
 * Marks schedule slots as covered by a sync asked for outside the schedule, so the scheduler
 * does not queue its own sync for them: each slot given is stored as the claimed one when it is
 * newer, never moving a stored slot back, in one statement (concurrent claims and covers of the
 * row wait for each other and each keeps the later slot). `schedule` holds the crons the slots
 * were worked out from; when the row's crons are no longer those, nothing is covered (the slots
 * may not be slots of the new crons). Returns the slots that moved with the values they replaced
 * (null: none moved), so a sync that could not be queued after all hands them back
 * ({@link releaseClaimedSlots}).
 *
 * A slot that moves resets the row's `next_due_at` (migration 0012's trigger) rather than this
 * statement computing it, since only the scheduler knows the jitter: the next tick takes a fresh
 * look at the row, finds the covered slots already claimed, claims nothing and re-times the row.
 */
export async function coverScheduleSlots(db: Db, integrationId: string, schedule: IntegrationSchedule, slots: DueSlots): Promise<ClaimedSlots | null> {
  return takeNewerSlots(db, integrationId, slots, db.$client`full_cron = ${schedule.fullCron} and delta_cron = ${schedule.deltaCron}`);
}
