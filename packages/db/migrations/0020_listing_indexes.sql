-- The synced-data lists page in order of change without sorting an integration's rows.
-- Memberships (`GET /v1/integrations/{id}/memberships`, ordered by updated_at, group, member) had
-- no index on the time: every page sorted every edge of the integration, 3.5 s a page at
-- 5,000,000 edges, now 8–80 ms (a page reads the edges of the instants it spans; a write
-- statement stamps all its edges with one time). Objects are listed one type at a time (users,
-- groups): with the type behind the time in the index, the first page of the 50,000 groups
-- among 1,000,000 users passed over every user (0.44–1.05 s). The type now comes first, and the
-- check constraint keeps the types to the three a listing of all types merges.
-- Inserting 500,000 edges costs about a tenth more (their keys go to the index's end); objects
-- keep the same number of indexes. The statements take about 1.9 s per million objects (the
-- index 1.4 s, the check 0.5 s) and 0.4 s per million edges, during which writes to those tables
-- wait.
DROP INDEX "directory_objects_integration_updated_idx";--> statement-breakpoint
CREATE INDEX "directory_objects_integration_type_updated_idx" ON "directory_objects" USING btree ("integration_id","type","updated_at");--> statement-breakpoint
CREATE INDEX "memberships_integration_updated_idx" ON "memberships" USING btree ("integration_id","updated_at");--> statement-breakpoint
ALTER TABLE "directory_objects" ADD CONSTRAINT "directory_objects_type_ck" CHECK ("directory_objects"."type" in ('user', 'group', 'contact'));