-- Drone's cancel_running (PostgreSQL); twin of ../sqlite/0008_cancel_running.sql. With it,
-- cancel_push/cancel_pulls also cancel older builds of the same ref that are already running.
ALTER TABLE repos ADD COLUMN cancel_running BOOLEAN NOT NULL DEFAULT false;
