-- The administrator signs in (OpenID Connect) after the admin consent: the request keeps the
-- sign-in nonce, when its second state was used, and the authorization code (sealed) until a
-- worker redeems it. Requests already answered under the old flow keep their outcome.
ALTER TABLE "entra_consent_states" ADD COLUMN "sign_in_nonce" text;--> statement-breakpoint
ALTER TABLE "entra_consent_states" ADD COLUMN "sign_in_used_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "entra_consent_states" ADD COLUMN "code_ciphertext" text;--> statement-breakpoint
ALTER TABLE "entra_consent_states" ADD COLUMN "code_key_id" text;