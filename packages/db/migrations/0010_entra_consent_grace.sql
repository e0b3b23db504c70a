-- A grant takes a while to reach every Entra ID and Graph replica: a consent is revoked only after
-- several refused runs in a row past a grace period, counted here and reset by a run that reads.
-- Consent requests nobody answered end as `expired`. Connectors no longer ask tenants for
-- Application.ReadWrite.OwnedBy: rolling the app's own keys needs no permission and the rotation
-- no longer reads the app registration.
ALTER TABLE "entra_consent_states" DROP CONSTRAINT "entra_consent_states_outcome_ck";--> statement-breakpoint
ALTER TABLE "connectors" ALTER COLUMN "permissions" SET DEFAULT '["User.Read.All","GroupMember.Read.All"]'::jsonb;--> statement-breakpoint
UPDATE "connectors" SET "permissions" = "permissions" - 'Application.ReadWrite.OwnedBy';--> statement-breakpoint
ALTER TABLE "entra_consents" ADD COLUMN "auth_failures" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "entra_consents" ADD COLUMN "last_auth_failure_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "entra_consent_states" ADD CONSTRAINT "entra_consent_states_outcome_ck" CHECK (outcome is null or outcome in ('granted', 'denied', 'not_granted', 'confirmation_required', 'failed', 'expired'));
