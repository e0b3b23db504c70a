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
  const full = iso(due.full);
  const delta = iso(due.delta);
  const rows = await db.$client<ClaimRow[]>`
    with current_slots as (
      select id, full_scheduled_for, delta_scheduled_for
      from integrations
      where id = ${integrationId} and enabled
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
    full: row.take_full ? due.full : null,
    delta: row.take_delta ? due.delta : null,
    previousFull: date(row.previous_full),
    previousDelta: date(row.previous_delta),
  };
}

/**
 * Undoes a claim whose job could not be enqueued, so the next tick tries again. A slot is only
 * put back while it still holds the claimed value (a later claim is never undone).
 */
export async function releaseClaimedSlots(db: Db, integrationId: string, claimed: ClaimedSlots): Promise<void> {
  const [full, delta] = [iso(claimed.full), iso(claimed.delta)];
  const [previousFull, previousDelta] = [iso(claimed.previousFull), iso(claimed.previousDelta)];
  await db.$client`
    update integrations set
      full_scheduled_for = case
        when ${full}::timestamptz is not null and full_scheduled_for = ${full}::timestamptz
        then ${previousFull}::timestamptz else full_scheduled_for end,
      delta_scheduled_for = case
        when ${delta}::timestamptz is not null and delta_scheduled_for = ${delta}::timestamptz
        then ${previousDelta}::timestamptz else delta_scheduled_for end
    where id = ${integrationId}`;
}

/**
 * Records on a queued run that the full sync which fell due absorbed it (its job now runs full).
 */
export async function markRunUpgradedToFull(db: Db, runId: string): Promise<void> {
  await db.$client`
    update sync_runs set mode_requested = 'full'
    where id = ${runId} and status = 'queued' and mode_requested = 'delta'`;
}
