CREATE TABLE "console_oidc_logins" (
	"state_hash" text PRIMARY KEY NOT NULL,
	"browser_hash" text NOT NULL,
	"return_to" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "console_sessions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"token_hash" text NOT NULL,
	"subject" text NOT NULL,
	"name" text NOT NULL,
	"email" text,
	"method" text NOT NULL,
	"grants" jsonb NOT NULL,
	"platform_role" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	CONSTRAINT "console_sessions_token_hash_unique" UNIQUE("token_hash"),
	CONSTRAINT "console_sessions_platform_role_ck" CHECK (platform_role is null or platform_role in ('viewer', 'operator', 'admin')),
	CONSTRAINT "console_sessions_method_ck" CHECK (method in ('oidc', 'link'))
);
--> statement-breakpoint
CREATE TABLE "console_sign_in_links" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"token_hash" text NOT NULL,
	"account_id" uuid NOT NULL,
	"role" text NOT NULL,
	"created_by" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"used_at" timestamp with time zone,
	CONSTRAINT "console_sign_in_links_token_hash_unique" UNIQUE("token_hash"),
	CONSTRAINT "console_sign_in_links_role_ck" CHECK (role in ('viewer', 'operator', 'admin'))
);
--> statement-breakpoint
ALTER TABLE "console_sign_in_links" ADD CONSTRAINT "console_sign_in_links_account_id_accounts_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."accounts"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "console_oidc_logins_expires_idx" ON "console_oidc_logins" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "console_sessions_expires_idx" ON "console_sessions" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "console_sign_in_links_expires_idx" ON "console_sign_in_links" USING btree ("expires_at");