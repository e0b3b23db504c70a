-- The console page an admin-consent request sends the browser back to (a path under /console/,
-- checked by the API), and the count of failed certificate rotations since the last success,
-- which the console shows per connector. Rotations that failed before this migration count once:
-- only the last outcome was kept.
ALTER TABLE "entra_consent_states" ADD COLUMN "return_to" text;--> statement-breakpoint
ALTER TABLE "connectors" ADD COLUMN "rotation_failures" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
UPDATE "connectors" SET "rotation_failures" = 1 WHERE "last_rotation_status" = 'failed';
