-- One run lifecycle: a threshold-blocked run reads `blocked` (was `blocked_by_threshold`), a failed
-- attempt that will be retried reads `retrying`; every attempt is fenced by a token.
ALTER TABLE "sync_runs" DROP CONSTRAINT "sync_runs_status_ck";--> statement-breakpoint
UPDATE "sync_runs" SET "status" = 'blocked' WHERE "status" = 'blocked_by_threshold';--> statement-breakpoint
UPDATE "integrations" SET "status" = 'blocked' WHERE "status" = 'blocked_by_threshold';--> statement-breakpoint
ALTER TABLE "integrations" ADD COLUMN "sync_fence" text;--> statement-breakpoint
ALTER TABLE "sync_runs" ADD COLUMN "attempt" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "sync_runs" ADD COLUMN "max_attempts" integer;--> statement-breakpoint
ALTER TABLE "sync_runs" ADD COLUMN "fence" text;--> statement-breakpoint
ALTER TABLE "sync_runs" ADD COLUMN "last_error" text;--> statement-breakpoint
ALTER TABLE "sync_runs" ADD COLUMN "heartbeat_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "sync_runs" ADD COLUMN "requeued_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "sync_runs" ADD CONSTRAINT "sync_runs_status_ck" CHECK (status in ('queued', 'running', 'retrying', 'succeeded', 'failed', 'blocked', 'dry_run'));