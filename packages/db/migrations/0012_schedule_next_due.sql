-- When each integration next needs the scheduler's attention (its next slot plus its jitter), so a
-- tick reads only the due rows through a partial index instead of evaluating every cron. The
-- scheduler keeps it with raw SQL (packages/db/src/schedule-slots.ts); the drizzle schema does not
-- carry it, so the public integration shape is unchanged. '-infinity' means "look now": new rows,
-- and rows whose schedule, enabled flag or claimed slots another statement changed (the trigger).
ALTER TABLE "integrations" ADD COLUMN "next_due_at" timestamptz DEFAULT '-infinity' NOT NULL;--> statement-breakpoint
CREATE INDEX "integrations_next_due_idx" ON "integrations" USING btree ("next_due_at") WHERE "enabled";--> statement-breakpoint
CREATE FUNCTION "integrations_schedule_changed"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- The scheduler's own claims set next_due_at with the slots; any other change of what decides
  -- due-ness (an API edit of a cron, re-enabling, a slot written by hand) makes the row due for a
  -- fresh look on the next tick.
  IF NEW.next_due_at IS NOT DISTINCT FROM OLD.next_due_at THEN
    NEW.next_due_at := '-infinity';
  END IF;
  RETURN NEW;
END $$;--> statement-breakpoint
CREATE TRIGGER "integrations_schedule_changed" BEFORE UPDATE OF "delta_cron", "full_cron", "enabled", "delta_scheduled_for", "full_scheduled_for" ON "integrations"
  FOR EACH ROW WHEN (
    NEW.delta_cron IS DISTINCT FROM OLD.delta_cron OR NEW.full_cron IS DISTINCT FROM OLD.full_cron
    OR NEW.enabled IS DISTINCT FROM OLD.enabled
    OR NEW.delta_scheduled_for IS DISTINCT FROM OLD.delta_scheduled_for
    OR NEW.full_scheduled_for IS DISTINCT FROM OLD.full_scheduled_for
  ) EXECUTE FUNCTION "integrations_schedule_changed"();
