-- Repositories Skiff hosts itself (PostgreSQL); twin of ../sqlite/0006_hosted.sql.
-- A hosted repository lives in a bare repository under the data directory and is served over
-- git's smart HTTP protocol; a push to it makes builds the way a forge's webhook does.
ALTER TABLE repos ADD COLUMN hosted BOOLEAN NOT NULL DEFAULT false;
