-- Member DNs that matched no synced object, and managers cleared because the manager was deleted:
-- kept so the reference is made as soon as the object appears, in a delta as in a full sync.
CREATE TABLE "dangling_references" (
	"integration_id" uuid NOT NULL,
	"attribute" text NOT NULL,
	"target" text NOT NULL,
	"source_external_id" text NOT NULL,
	"restore_hash" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "dangling_references_integration_id_attribute_target_source_external_id_pk" PRIMARY KEY("integration_id","attribute","target","source_external_id")
);
--> statement-breakpoint
ALTER TABLE "dangling_references" ADD CONSTRAINT "dangling_references_integration_id_integrations_id_fk" FOREIGN KEY ("integration_id") REFERENCES "public"."integrations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "dangling_references_source_idx" ON "dangling_references" USING btree ("integration_id","source_external_id");--> statement-breakpoint
-- Finds the objects whose manager is being deleted: their attribute is cleared in that run.
CREATE INDEX "directory_objects_integration_manager_idx" ON "directory_objects" USING btree ("integration_id",("attributes" ->> 'manager')) WHERE "directory_objects"."attributes" ? 'manager';