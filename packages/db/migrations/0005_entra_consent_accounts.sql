-- A consent belongs to the account that asked for it (issue 8): consents and consent states are
-- keyed by account. Which account obtained an existing consent was never recorded, so it is
-- attributed through the integrations that use it: when exactly one account has Entra
-- integrations on that connector and tenant, the consent becomes that account's as it was; when
-- several do, each gets a pending consent and must have the tenant consent again (the shared
-- consent is what let one account read another's tenant); a consent nobody uses is dropped.
-- Outstanding consent links name no account and are dropped too: ask for new ones.
DELETE FROM "entra_consent_states";--> statement-breakpoint
ALTER TABLE "entra_consent_states" ADD COLUMN "account_id" uuid NOT NULL;--> statement-breakpoint
ALTER TABLE "entra_consent_states" ADD COLUMN "outcome" text;--> statement-breakpoint
ALTER TABLE "entra_consent_states" ADD COLUMN "detail" text;--> statement-breakpoint
ALTER TABLE "entra_consent_states" ADD COLUMN "completed_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "entra_consents" ADD COLUMN "account_id" uuid;--> statement-breakpoint
ALTER TABLE "entra_consents" ADD COLUMN "roles" jsonb;--> statement-breakpoint
ALTER TABLE "entra_consents" DROP CONSTRAINT "entra_consents_pk";--> statement-breakpoint
WITH "users" AS (
	SELECT DISTINCT c."connector_id", c."tenant_id", i."account_id"
	FROM "entra_consents" c
	JOIN "integrations" i ON i."kind" = 'entra_id'
		AND (i."settings"->>'connectorId' = c."connector_id"::text OR i."settings" ? 'legacyApp')
		AND lower(i."settings"->>'tenantId') IN (c."tenant_id", coalesce(c."tenant_guid", c."tenant_id"))
	WHERE c."account_id" IS NULL
), "counted" AS (
	SELECT "connector_id", "tenant_id", "account_id", count(*) OVER (PARTITION BY "connector_id", "tenant_id") AS "sharers"
	FROM "users"
)
INSERT INTO "entra_consents" ("account_id", "connector_id", "tenant_id", "tenant_guid", "status", "error", "error_description", "granted_at", "revoked_at", "updated_at")
SELECT k."account_id", c."connector_id", c."tenant_id", c."tenant_guid",
	CASE WHEN k."sharers" = 1 THEN c."status" ELSE 'pending' END,
	CASE WHEN k."sharers" = 1 THEN c."error" ELSE 'consent_owner_unknown' END,
	CASE WHEN k."sharers" = 1 THEN c."error_description" ELSE 'this tenant''s consent was shared by several accounts: its administrator must grant consent again for this account' END,
	CASE WHEN k."sharers" = 1 THEN c."granted_at" END,
	CASE WHEN k."sharers" = 1 THEN c."revoked_at" END,
	now()
FROM "entra_consents" c
JOIN "counted" k ON k."connector_id" = c."connector_id" AND k."tenant_id" = c."tenant_id"
WHERE c."account_id" IS NULL;--> statement-breakpoint
DELETE FROM "entra_consents" WHERE "account_id" IS NULL;--> statement-breakpoint
ALTER TABLE "entra_consents" ALTER COLUMN "account_id" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "entra_consents" ADD CONSTRAINT "entra_consents_pk" PRIMARY KEY("account_id","connector_id","tenant_id");--> statement-breakpoint
ALTER TABLE "entra_consent_states" ADD CONSTRAINT "entra_consent_states_account_id_accounts_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."accounts"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "entra_consents" ADD CONSTRAINT "entra_consents_account_id_accounts_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."accounts"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "entra_consent_states_account_idx" ON "entra_consent_states" USING btree ("account_id","connector_id","tenant_id");--> statement-breakpoint
CREATE INDEX "entra_consents_connector_tenant_idx" ON "entra_consents" USING btree ("connector_id","tenant_id");--> statement-breakpoint
ALTER TABLE "entra_consent_states" ADD CONSTRAINT "entra_consent_states_outcome_ck" CHECK (outcome is null or outcome in ('granted', 'denied', 'not_granted', 'confirmation_required', 'failed'));
