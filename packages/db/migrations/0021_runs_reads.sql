-- Reads of the runs that grew with every run kept (30 days of them by default, or more).
--
-- An account's runs page from one index. `GET /v1/runs` lists the runs of every integration of
-- the account, newest first; with only (integration_id, queued_at) indexed, every page joined
-- and top-N sorted all the account's runs, and scanned those of every other account: 1.0–1.1 s
-- a page at 1,000,000 runs of the account (500 integrations with a week of 5-minute deltas),
-- whichever page. Each run now carries its integration's account, indexed with the status
-- before the time: a page of one status (the failed runs) reads that status alone, and a page
-- of every status takes the newest of one scan per status, each from the cursor.
--
-- The account is copied from the integration by the trigger below on every insert (and on a
-- change of either column), never taken from the writer: a run cannot be listed under another
-- account than its integration's. Integrations do not move between accounts. The column stays
-- nullable so that a run of a missing integration is still refused by the foreign key (the
-- writers' "integration not found"), not by a not-null check that would run first.
--
-- The update fills the runs already stored: it rewrites every row of sync_runs, during which
-- runs are neither read nor written (38 s for 2,000,000 runs here, with the indexes).
ALTER TABLE "sync_runs" ADD COLUMN "account_id" uuid;--> statement-breakpoint
UPDATE "sync_runs" r SET "account_id" = i."account_id" FROM "integrations" i WHERE i."id" = r."integration_id";--> statement-breakpoint
CREATE FUNCTION "sync_runs_account"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.account_id := (SELECT i.account_id FROM integrations i WHERE i.id = NEW.integration_id);
	RETURN NEW;
END
$$;
--> statement-breakpoint
-- The function reads the integrations of the schema it was made in, pg_temp last: a session's
-- temporary table named `integrations` would otherwise come first and name another account.
DO $$
BEGIN
	EXECUTE format('ALTER FUNCTION "sync_runs_account"() SET search_path = %I, pg_temp', current_schema());
END
$$;
--> statement-breakpoint
CREATE TRIGGER "sync_runs_account" BEFORE INSERT OR UPDATE OF "integration_id", "account_id" ON "sync_runs"
	FOR EACH ROW EXECUTE FUNCTION "sync_runs_account"();
--> statement-breakpoint
CREATE INDEX "sync_runs_account_status_queued_idx" ON "sync_runs" USING btree ("account_id","status","queued_at","id");--> statement-breakpoint
-- The runs not finished yet have an index of their own, a few rows: the reconciler (every minute)
-- and the metrics scrape (`dirsync_runs{status}`) read every run of the table to find them,
-- 0.21–0.36 s and 0.26–0.35 s at 2,000,000 runs (now under 2.5 ms), growing with the runs
-- kept. A run's change of status now updates the indexes; its other updates (counters,
-- heartbeats) do not change an indexed column.
CREATE INDEX "sync_runs_active_idx" ON "sync_runs" USING btree ("status") WHERE status in ('queued', 'running', 'retrying');
