-- An account's audit log (GET /v1/audit, dirsync audit) is read newest first, a page at a time.
-- Without an index on the account, every page read all of the account's events (or the table)
-- and sorted them. The first index gives an account's events in the order the query asks for,
-- so a page reads its rows and stops; the second, partial one does the same for the few events
-- recorded with an integration alone (a worker's), which belong to the integration's account.
-- Built in the migration's transaction (writers of audit_events wait meanwhile): the table stays
-- the size DIRSYNC_AUDIT_RETENTION_DAYS keeps.
CREATE INDEX "audit_events_account_idx" ON "audit_events" USING btree ("account_id","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST);--> statement-breakpoint
CREATE INDEX "audit_events_integration_only_idx" ON "audit_events" USING btree ("integration_id","created_at" DESC NULLS FIRST,"id" DESC NULLS FIRST) WHERE "audit_events"."account_id" is null;
