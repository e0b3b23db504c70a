-- Edges are keyed by themselves. A first sync writes hundreds of thousands of them, each paying
-- for every index and check of its row: the surrogate id (a sequence value and an index entry),
-- the b-tree on (integration, member) and the foreign key to the integration (an RI query per
-- edge). Inserting 500,000 edges took 4.3–4.9 s of backend CPU before, 1.7–1.8 s after; the
-- database's CPU time of a first sync of 100,000 users and 500,000 edges fell by a third.
--
-- The unique index on the edge becomes the primary key as it is (no rebuild). Members are looked
-- up by equality only (a deleted object's edges, the groups of an object): a hash index on the
-- member id serves that and costs a third of the b-tree to maintain. Instead of the foreign key,
-- a real run's steps hold the integration's row (`for share`, the fence check) while they write
-- edges, and the trigger below deletes an integration's edges with it, as the cascade did.
ALTER TABLE "memberships" DROP CONSTRAINT "memberships_integration_id_integrations_id_fk";--> statement-breakpoint
ALTER TABLE "memberships" DROP COLUMN "id";--> statement-breakpoint
ALTER TABLE "memberships" ADD CONSTRAINT "memberships_edge_uq" PRIMARY KEY USING INDEX "memberships_edge_uq";--> statement-breakpoint
DROP INDEX "memberships_member_idx";--> statement-breakpoint
CREATE INDEX "memberships_member_idx" ON "memberships" USING hash ("member_external_id");--> statement-breakpoint
CREATE FUNCTION "integrations_forget_memberships"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM memberships m USING gone g WHERE m.integration_id = g.id;
	RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "integrations_forget_memberships" AFTER DELETE ON "integrations"
	REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION "integrations_forget_memberships"();
