-- The pipeline file a build was planned from (PostgreSQL); twin of ../sqlite/0007_build_config.sql.
-- Runners plan their stage from this text instead of reading the file from git again: one
-- read per build, and a stage runs exactly what was planned. Empty for older builds.
ALTER TABLE builds ADD COLUMN config TEXT NOT NULL DEFAULT '';
