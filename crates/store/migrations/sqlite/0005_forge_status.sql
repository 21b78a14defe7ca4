-- Commit statuses back to the forges (SQLite); twin of ../postgres/0005_forge_status.sql.
-- One forge per repository: its kind (gitea, github, gitlab), API base URL and the API token
-- sealed with the server key (empty when only the kind is known, from a webhook). `since`:
-- statuses are reported for builds created from then on, not for the history.
CREATE TABLE repo_forges (
    repo_id BIGINT PRIMARY KEY REFERENCES repos(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    api_url TEXT NOT NULL,
    sealed_token BLOB NOT NULL,
    since BIGINT NOT NULL,
    updated BIGINT NOT NULL
);

-- The last build state claimed for a report, so each state is reported once (across replicas
-- too). `rank`: 0 pending, 1 running, 2 ended; a report never goes back to a lower rank.
CREATE TABLE forge_reports (
    build_id BIGINT PRIMARY KEY REFERENCES builds(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    rank BIGINT NOT NULL,
    updated BIGINT NOT NULL
);
