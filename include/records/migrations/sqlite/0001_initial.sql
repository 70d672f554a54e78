-- Platform records: pipeline runs, builds, test and quality reports, releases with their
-- steps per site, the image each site runs, approvals, audit events and release locks.
-- SQLite twin of mysql/0001_initial.sql: same tables, columns and keys. Times are UTC, stored
-- as text 'YYYY-MM-DD HH:MM:SS.ffffff' so they sort in time order. The runner applies the
-- file in one transaction.

CREATE TABLE IF NOT EXISTS pipeline_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dag_id VARCHAR(250) NOT NULL,
    run_id VARCHAR(250) NOT NULL,
    service VARCHAR(100) NULL,
    commit_id VARCHAR(100) NULL,
    run_type VARCHAR(32) NULL,
    source VARCHAR(16) NULL,
    triggered_by VARCHAR(250) NULL,
    state VARCHAR(16) NOT NULL,
    started_at DATETIME(6) NULL,
    finished_at DATETIME(6) NULL,
    detail MEDIUMTEXT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    CONSTRAINT uq_pipeline_runs_run UNIQUE (dag_id, run_id)
);

CREATE INDEX IF NOT EXISTS ix_pipeline_runs_service ON pipeline_runs (service, started_at);

CREATE TABLE IF NOT EXISTS builds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service VARCHAR(100) NOT NULL,
    commit_id VARCHAR(100) NOT NULL,
    commit_message TEXT NULL,
    image VARCHAR(500) NULL,
    digest VARCHAR(100) NULL,
    state VARCHAR(16) NOT NULL,
    dag_id VARCHAR(250) NOT NULL,
    run_id VARCHAR(250) NOT NULL,
    task_id VARCHAR(250) NOT NULL,
    map_index INT NOT NULL,
    try_number INT NOT NULL,
    detail MEDIUMTEXT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    CONSTRAINT uq_builds_try UNIQUE (dag_id, run_id, task_id, map_index, try_number)
);

CREATE INDEX IF NOT EXISTS ix_builds_digest ON builds (digest, state, created_at);
CREATE INDEX IF NOT EXISTS ix_builds_commit ON builds (service, commit_id, state, created_at);

CREATE TABLE IF NOT EXISTS test_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service VARCHAR(100) NOT NULL,
    commit_id VARCHAR(100) NULL,
    digest VARCHAR(100) NULL,
    state VARCHAR(16) NOT NULL,
    tests_total INT NOT NULL,
    tests_failed INT NOT NULL,
    tests_errors INT NOT NULL,
    tests_skipped INT NOT NULL,
    failed_cases MEDIUMTEXT NULL,
    coverage DOUBLE NULL,
    dag_id VARCHAR(250) NOT NULL,
    run_id VARCHAR(250) NOT NULL,
    task_id VARCHAR(250) NOT NULL,
    map_index INT NOT NULL,
    try_number INT NOT NULL,
    detail MEDIUMTEXT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    CONSTRAINT uq_test_reports_try UNIQUE (dag_id, run_id, task_id, map_index, try_number)
);

CREATE INDEX IF NOT EXISTS ix_test_reports_digest ON test_reports (digest, state, created_at);
CREATE INDEX IF NOT EXISTS ix_test_reports_commit ON test_reports (service, commit_id, state, created_at);

CREATE TABLE IF NOT EXISTS quality_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service VARCHAR(100) NOT NULL,
    commit_id VARCHAR(100) NULL,
    digest VARCHAR(100) NULL,
    gate_passed SMALLINT NOT NULL,
    findings MEDIUMTEXT NULL,
    findings_total INT NOT NULL,
    coverage DOUBLE NULL,
    tool VARCHAR(50) NULL,
    dag_id VARCHAR(250) NOT NULL,
    run_id VARCHAR(250) NOT NULL,
    task_id VARCHAR(250) NOT NULL,
    map_index INT NOT NULL,
    try_number INT NOT NULL,
    detail MEDIUMTEXT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    CONSTRAINT uq_quality_reports_try UNIQUE (dag_id, run_id, task_id, map_index, try_number)
);

CREATE INDEX IF NOT EXISTS ix_quality_reports_digest ON quality_reports (digest, gate_passed, created_at);
CREATE INDEX IF NOT EXISTS ix_quality_reports_commit ON quality_reports (service, commit_id, gate_passed, created_at);

CREATE TABLE IF NOT EXISTS releases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service VARCHAR(100) NOT NULL,
    image VARCHAR(500) NOT NULL,
    digest VARCHAR(100) NOT NULL,
    triggered_by VARCHAR(250) NOT NULL,
    source VARCHAR(16) NULL,
    state VARCHAR(16) NOT NULL,
    dag_id VARCHAR(250) NOT NULL,
    run_id VARCHAR(250) NOT NULL,
    started_at DATETIME(6) NOT NULL,
    finished_at DATETIME(6) NULL,
    detail MEDIUMTEXT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    CONSTRAINT uq_releases_run UNIQUE (dag_id, run_id, service)
);

CREATE INDEX IF NOT EXISTS ix_releases_service ON releases (service, started_at);

CREATE TABLE IF NOT EXISTS release_steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    release_id BIGINT NOT NULL,
    site VARCHAR(64) NOT NULL,
    step VARCHAR(100) NOT NULL,
    state VARCHAR(16) NOT NULL,
    weights TEXT NULL,
    detail MEDIUMTEXT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    CONSTRAINT uq_release_steps_step UNIQUE (release_id, site, step),
    CONSTRAINT fk_release_steps_release FOREIGN KEY (release_id) REFERENCES releases (id)
);

CREATE TABLE IF NOT EXISTS site_images (
    service VARCHAR(100) NOT NULL,
    site VARCHAR(64) NOT NULL,
    image VARCHAR(500) NOT NULL,
    digest VARCHAR(100) NOT NULL,
    release_id BIGINT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (service, site),
    CONSTRAINT fk_site_images_release FOREIGN KEY (release_id) REFERENCES releases (id)
);

CREATE TABLE IF NOT EXISTS approvals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    release_id BIGINT NULL,
    decision VARCHAR(16) NOT NULL,
    approver VARCHAR(250) NOT NULL,
    comment TEXT NULL,
    dag_id VARCHAR(250) NOT NULL,
    run_id VARCHAR(250) NOT NULL,
    task_id VARCHAR(250) NOT NULL,
    map_index INT NOT NULL,
    try_number INT NOT NULL,
    decided_at DATETIME(6) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    CONSTRAINT uq_approvals_try UNIQUE (dag_id, run_id, task_id, map_index, try_number),
    CONSTRAINT fk_approvals_release FOREIGN KEY (release_id) REFERENCES releases (id)
);

CREATE INDEX IF NOT EXISTS ix_approvals_release ON approvals (release_id);

CREATE TABLE IF NOT EXISTS audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_key CHAR(64) NOT NULL,
    occurred_at DATETIME(6) NOT NULL,
    actor VARCHAR(250) NOT NULL,
    action VARCHAR(100) NOT NULL,
    target VARCHAR(250) NOT NULL,
    source VARCHAR(16) NOT NULL,
    dag_id VARCHAR(250) NULL,
    run_id VARCHAR(250) NULL,
    task_id VARCHAR(250) NULL,
    detail MEDIUMTEXT NULL,
    CONSTRAINT uq_audit_events_key UNIQUE (event_key)
);

CREATE INDEX IF NOT EXISTS ix_audit_events_time ON audit_events (occurred_at);
CREATE INDEX IF NOT EXISTS ix_audit_events_target ON audit_events (target, occurred_at);
CREATE INDEX IF NOT EXISTS ix_audit_events_run ON audit_events (dag_id, run_id);

CREATE TABLE IF NOT EXISTS release_locks (
    service VARCHAR(100) NOT NULL,
    owner_run_id VARCHAR(250) NOT NULL,
    acquired_at DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    PRIMARY KEY (service)
);
