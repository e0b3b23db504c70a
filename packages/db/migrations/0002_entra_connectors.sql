CREATE TABLE "connector_credentials" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"connector_id" uuid NOT NULL,
	"thumbprint" text NOT NULL,
	"thumbprint_sha256" text NOT NULL,
	"certificate_pem" text NOT NULL,
	"private_key_ciphertext" text NOT NULL,
	"private_key_key_id" text NOT NULL,
	"status" text NOT NULL,
	"graph_key_id" text,
	"not_before" timestamp with time zone NOT NULL,
	"not_after" timestamp with time zone NOT NULL,
	"rotation_slot" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"activated_at" timestamp with time zone,
	"retired_at" timestamp with time zone,
	"removed_at" timestamp with time zone,
	CONSTRAINT "connector_credentials_status_ck" CHECK (status in ('pending', 'current', 'previous', 'retired', 'removed', 'abandoned'))
);
--> statement-breakpoint
CREATE TABLE "connectors" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"description" text NOT NULL,
	"client_id" text NOT NULL,
	"application_object_id" text NOT NULL,
	"home_tenant_id" text NOT NULL,
	"authority_host" text DEFAULT 'https://login.microsoftonline.com' NOT NULL,
	"graph_base_url" text DEFAULT 'https://graph.microsoft.com' NOT NULL,
	"tls_ca_pem" text,
	"redirect_uri" text NOT NULL,
	"permissions" jsonb DEFAULT '["User.Read.All","GroupMember.Read.All","Application.ReadWrite.OwnedBy"]'::jsonb NOT NULL,
	"rotation_cron" text DEFAULT '0 3 * * *' NOT NULL,
	"certificate_validity_days" integer DEFAULT 30 NOT NULL,
	"rotation_scheduled_for" timestamp with time zone,
	"rotated_slot" timestamp with time zone,
	"rotation_lease_until" timestamp with time zone,
	"last_rotation_at" timestamp with time zone,
	"last_rotation_status" text,
	"last_rotation_error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "connectors_description_ck" CHECK (length(btrim(description)) > 0),
	CONSTRAINT "connectors_validity_ck" CHECK (certificate_validity_days between 2 and 730)
);
--> statement-breakpoint
CREATE TABLE "entra_consent_states" (
	"nonce" text PRIMARY KEY NOT NULL,
	"connector_id" uuid NOT NULL,
	"tenant_id" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"used_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "entra_consents" (
	"connector_id" uuid NOT NULL,
	"tenant_id" text NOT NULL,
	"tenant_guid" text,
	"status" text NOT NULL,
	"error" text,
	"error_description" text,
	"granted_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "entra_consents_pk" PRIMARY KEY("connector_id","tenant_id"),
	CONSTRAINT "entra_consents_status_ck" CHECK (status in ('pending', 'granted', 'denied', 'revoked'))
);
--> statement-breakpoint
CREATE TABLE "platform_settings" (
	"key" text PRIMARY KEY NOT NULL,
	"value" jsonb NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "connector_credentials" ADD CONSTRAINT "connector_credentials_connector_id_connectors_id_fk" FOREIGN KEY ("connector_id") REFERENCES "public"."connectors"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "entra_consent_states" ADD CONSTRAINT "entra_consent_states_connector_id_connectors_id_fk" FOREIGN KEY ("connector_id") REFERENCES "public"."connectors"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "entra_consents" ADD CONSTRAINT "entra_consents_connector_id_connectors_id_fk" FOREIGN KEY ("connector_id") REFERENCES "public"."connectors"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "connector_credentials_thumbprint_uq" ON "connector_credentials" USING btree ("connector_id","thumbprint");--> statement-breakpoint
CREATE UNIQUE INDEX "connector_credentials_current_uq" ON "connector_credentials" USING btree ("connector_id") WHERE status = 'current';--> statement-breakpoint
CREATE INDEX "connector_credentials_connector_idx" ON "connector_credentials" USING btree ("connector_id","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "connectors_name_uq" ON "connectors" USING btree ("name");--> statement-breakpoint
CREATE UNIQUE INDEX "connectors_client_id_uq" ON "connectors" USING btree ("client_id");