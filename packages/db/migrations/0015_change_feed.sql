-- The change feed (transactional outbox): every object create/update/restore/delete and every
-- membership change is written to the account's change log in the statement that makes it.
--
-- A per-account cursor must be dense and committed in order (a reader that has seen N never
-- finds an N-1 committed later). Numbering entries as they are written would hold the account's
-- counter row locked until the writing transaction commits: a sync step's transaction lasts a
-- whole batch, and a step that spreads its rows over forked transactions waits for them while
-- holding its own, so the forks would wait on the step's counter lock for ever. Instead a
-- transaction's entries hang off one `change_batches` row (per integration and run), numbered
-- 1..n within it, and the batch gets its cursor range at commit, from a deferred constraint
-- trigger: the counter row is locked only from that trigger to the commit, a few microseconds,
-- so batches take their ranges in commit order. A transaction that rolls back leaves nothing:
-- no entry, no counter bump, no gap.
CREATE TABLE "change_cursors" (
	"account_id" uuid PRIMARY KEY NOT NULL REFERENCES "accounts"("id") ON DELETE cascade,
	"last" bigint DEFAULT 0 NOT NULL,
	"pruned_through" bigint DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE TABLE "change_batches" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY,
	"xact" xid8 NOT NULL,
	"account_id" uuid NOT NULL REFERENCES "accounts"("id") ON DELETE cascade,
	"integration_id" uuid NOT NULL,
	"run_id" uuid,
	"entries" integer NOT NULL,
	"first_seq" bigint,
	"last_seq" bigint,
	"published_at" timestamp with time zone,
	CONSTRAINT "change_batches_xact_uq" UNIQUE NULLS NOT DISTINCT("xact","integration_id","run_id")
);
--> statement-breakpoint
CREATE UNIQUE INDEX "change_batches_account_seq_uq" ON "change_batches" USING btree ("account_id","last_seq");--> statement-breakpoint
CREATE INDEX "change_batches_run_idx" ON "change_batches" USING btree ("run_id") WHERE "run_id" IS NOT NULL;--> statement-breakpoint
CREATE INDEX "change_batches_published_idx" ON "change_batches" USING btree ("published_at") WHERE "last_seq" IS NOT NULL;--> statement-breakpoint
-- A sync writes entries by the thousand, so a row stores a run of them: the objects one statement
-- created (or updated, restored, deleted) of one type are one row, their external ids an array
-- (`ids`), the entries numbered `ordinal` .. `ordinal` + `span` - 1; a group's membership change is
-- a row of its own (`external_id`, with `added`/`removed` as JSON arrays, which the membership
-- statements hold already). Readers expand the runs. No foreign key
-- to the batch (its check would query the batch once per row); a batch's rows go with it through
-- the statement trigger below. Id arrays are stored uncompressed: ids barely compress, and trying
-- costs the writer.
CREATE TABLE "changes" (
	"batch_id" bigint NOT NULL,
	"ordinal" integer NOT NULL,
	"span" integer DEFAULT 1 NOT NULL,
	"op" smallint NOT NULL,
	"object_type" text,
	"external_id" text,
	"ids" text[],
	"added" jsonb,
	"removed" jsonb,
	CONSTRAINT "changes_pk" PRIMARY KEY ("batch_id","ordinal"),
	CONSTRAINT "changes_op_ck" CHECK ("op" between 1 and 5)
);
--> statement-breakpoint
ALTER TABLE "changes" ALTER COLUMN "ids" SET STORAGE EXTERNAL;--> statement-breakpoint
ALTER TABLE "changes" ALTER COLUMN "added" SET STORAGE EXTERNAL;--> statement-breakpoint
ALTER TABLE "changes" ALTER COLUMN "removed" SET STORAGE EXTERNAL;--> statement-breakpoint
CREATE FUNCTION "change_batches_forget"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM changes c USING gone g WHERE c.batch_id = g.id;
	RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "change_batches_forget" AFTER DELETE ON "change_batches"
	REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION "change_batches_forget"();
--> statement-breakpoint
CREATE FUNCTION "change_batches_publish"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	n integer;
	top bigint;
BEGIN
	SELECT entries INTO n FROM change_batches WHERE id = NEW.id;
	IF n IS NULL OR n = 0 THEN
		RETURN NULL;
	END IF;
	INSERT INTO change_cursors AS c (account_id, last) VALUES (NEW.account_id, n)
	ON CONFLICT (account_id) DO UPDATE SET last = c.last + excluded.last
	RETURNING c.last INTO top;
	UPDATE change_batches SET first_seq = top - n + 1, last_seq = top, published_at = clock_timestamp() WHERE id = NEW.id;
	RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE CONSTRAINT TRIGGER "change_batches_publish" AFTER INSERT ON "change_batches"
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION "change_batches_publish"();
