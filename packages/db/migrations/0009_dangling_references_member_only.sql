-- Deleted managers are no longer remembered here: a restored manager names its reports itself
-- (AD directReports), so only member DNs are kept.
ALTER TABLE "dangling_references" DROP COLUMN "restore_hash";