CREATE TABLE "accounts" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "accounts_name_unique" UNIQUE("name")
);
--> statement-breakpoint
CREATE TABLE "audit_events" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "audit_events_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"account_id" uuid,
	"integration_id" uuid,
	"actor" text NOT NULL,
	"action" text NOT NULL,
	"details" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "directory_objects" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "directory_objects_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"integration_id" uuid NOT NULL,
	"external_id" text NOT NULL,
	"type" text NOT NULL,
	"dn" text,
	"attributes" jsonb NOT NULL,
	"content_hash" text NOT NULL,
	"members_hash" text,
	"last_seen_run_id" uuid,
	"deleted_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "integrations" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"account_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"name" text NOT NULL,
	"description" text DEFAULT '' NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"settings" jsonb NOT NULL,
	"secret_ciphertext" text,
	"secret_key_id" text,
	"delta_cron" text DEFAULT '*/5 * * * *' NOT NULL,
	"full_cron" text DEFAULT '0 2 * * *' NOT NULL,
	"delete_threshold_count" integer DEFAULT 500 NOT NULL,
	"delete_threshold_percent" integer DEFAULT 20 NOT NULL,
	"cursor" jsonb,
	"status" text DEFAULT 'new' NOT NULL,
	"last_run_id" uuid,
	"last_success_run_id" uuid,
	"last_success_at" timestamp with time zone,
	"delta_scheduled_for" timestamp with time zone,
	"full_scheduled_for" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "integrations_kind_ck" CHECK (kind in ('ldap', 'active_directory', 'domino', 'entra_id')),
	CONSTRAINT "integrations_threshold_ck" CHECK (delete_threshold_count >= 0 and delete_threshold_percent between 0 and 100)
);
--> statement-breakpoint
CREATE TABLE "memberships" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "memberships_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"integration_id" uuid NOT NULL,
	"group_external_id" text NOT NULL,
	"member_external_id" text NOT NULL,
	"last_seen_run_id" uuid,
	"deleted_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "sync_runs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"integration_id" uuid NOT NULL,
	"job_id" text,
	"mode_requested" text NOT NULL,
	"mode" text,
	"trigger" text NOT NULL,
	"reason" text,
	"dry_run" boolean DEFAULT false NOT NULL,
	"status" text DEFAULT 'queued' NOT NULL,
	"requested_by" text,
	"fetched" integer DEFAULT 0 NOT NULL,
	"created" integer DEFAULT 0 NOT NULL,
	"updated" integer DEFAULT 0 NOT NULL,
	"unchanged" integer DEFAULT 0 NOT NULL,
	"deleted" integer DEFAULT 0 NOT NULL,
	"restored" integer DEFAULT 0 NOT NULL,
	"failed" integer DEFAULT 0 NOT NULL,
	"memberships_added" integer DEFAULT 0 NOT NULL,
	"memberships_removed" integer DEFAULT 0 NOT NULL,
	"would_delete" integer DEFAULT 0 NOT NULL,
	"issues" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"worker_id" text,
	"error" text,
	"approved_at" timestamp with time zone,
	"approved_by" text,
	"queued_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"duration_ms" integer,
	CONSTRAINT "sync_runs_status_ck" CHECK (status in ('queued', 'running', 'succeeded', 'failed', 'blocked_by_threshold', 'dry_run')),
	CONSTRAINT "sync_runs_trigger_ck" CHECK (trigger in ('schedule', 'manual', 'api', 'password_update', 'recovery'))
);
--> statement-breakpoint
ALTER TABLE "directory_objects" ADD CONSTRAINT "directory_objects_integration_id_integrations_id_fk" FOREIGN KEY ("integration_id") REFERENCES "public"."integrations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "integrations" ADD CONSTRAINT "integrations_account_id_accounts_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."accounts"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "memberships" ADD CONSTRAINT "memberships_integration_id_integrations_id_fk" FOREIGN KEY ("integration_id") REFERENCES "public"."integrations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sync_runs" ADD CONSTRAINT "sync_runs_integration_id_integrations_id_fk" FOREIGN KEY ("integration_id") REFERENCES "public"."integrations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "audit_events_integration_idx" ON "audit_events" USING btree ("integration_id","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "directory_objects_integration_external_uq" ON "directory_objects" USING btree ("integration_id","external_id");--> statement-breakpoint
CREATE INDEX "directory_objects_integration_dn_idx" ON "directory_objects" USING btree ("integration_id","dn");--> statement-breakpoint
CREATE INDEX "directory_objects_integration_updated_idx" ON "directory_objects" USING btree ("integration_id","updated_at");--> statement-breakpoint
CREATE UNIQUE INDEX "integrations_account_name_uq" ON "integrations" USING btree ("account_id","name");--> statement-breakpoint
CREATE UNIQUE INDEX "memberships_edge_uq" ON "memberships" USING btree ("integration_id","group_external_id","member_external_id");--> statement-breakpoint
CREATE INDEX "memberships_member_idx" ON "memberships" USING btree ("integration_id","member_external_id");--> statement-breakpoint
CREATE INDEX "sync_runs_integration_idx" ON "sync_runs" USING btree ("integration_id","queued_at");