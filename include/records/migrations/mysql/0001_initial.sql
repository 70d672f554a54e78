-- Platform records: pipeline runs, builds, test and quality reports, releases with their
-- steps per site, the image each site runs, approvals, audit events and release locks.
-- MySQL 8 / MariaDB 10.11: InnoDB, utf8mb4 with binary collation (identifiers compare
-- exactly, as they do in Airflow). Times are UTC in DATETIME(6).
-- DDL is not transactional here, so every statement can be re-run (IF NOT EXISTS).

CREATE TABLE IF NOT EXISTS pipeline_runs (
    id BIGINT NOT NULL AUTO_INCREMENT,
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
    PRIMARY KEY (id),
    UNIQUE KEY uq_pipeline_runs_run (dag_id, run_id),
    KEY ix_pipeline_runs_service (service, started_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS builds (
    id BIGINT NOT NULL AUTO_INCREMENT,
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
    PRIMARY KEY (id),
    UNIQUE KEY uq_builds_try (dag_id, run_id, task_id, map_index, try_number),
    KEY ix_builds_digest (digest, state, created_at),
    KEY ix_builds_commit (service, commit_id, state, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS test_reports (
    id BIGINT NOT NULL AUTO_INCREMENT,
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
    PRIMARY KEY (id),
    UNIQUE KEY uq_test_reports_try (dag_id, run_id, task_id, map_index, try_number),
    KEY ix_test_reports_digest (digest, state, created_at),
    KEY ix_test_reports_commit (service, commit_id, state, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS quality_reports (
    id BIGINT NOT NULL AUTO_INCREMENT,
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
    PRIMARY KEY (id),
    UNIQUE KEY uq_quality_reports_try (dag_id, run_id, task_id, map_index, try_number),
    KEY ix_quality_reports_digest (digest, gate_passed, created_at),
    KEY ix_quality_reports_commit (service, commit_id, gate_passed, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS releases (
    id BIGINT NOT NULL AUTO_INCREMENT,
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
    PRIMARY KEY (id),
    UNIQUE KEY uq_releases_run (dag_id, run_id, service),
    KEY ix_releases_service (service, started_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS release_steps (
    id BIGINT NOT NULL AUTO_INCREMENT,
    release_id BIGINT NOT NULL,
    site VARCHAR(64) NOT NULL,
    step VARCHAR(100) NOT NULL,
    state VARCHAR(16) NOT NULL,
    weights TEXT NULL,
    detail MEDIUMTEXT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_release_steps_step (release_id, site, step),
    CONSTRAINT fk_release_steps_release FOREIGN KEY (release_id) REFERENCES releases (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS site_images (
    service VARCHAR(100) NOT NULL,
    site VARCHAR(64) NOT NULL,
    image VARCHAR(500) NOT NULL,
    digest VARCHAR(100) NOT NULL,
    release_id BIGINT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (service, site),
    CONSTRAINT fk_site_images_release FOREIGN KEY (release_id) REFERENCES releases (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS approvals (
    id BIGINT NOT NULL AUTO_INCREMENT,
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
    PRIMARY KEY (id),
    UNIQUE KEY uq_approvals_try (dag_id, run_id, task_id, map_index, try_number),
    KEY ix_approvals_release (release_id),
    CONSTRAINT fk_approvals_release FOREIGN KEY (release_id) REFERENCES releases (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS audit_events (
    id BIGINT NOT NULL AUTO_INCREMENT,
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
    PRIMARY KEY (id),
    UNIQUE KEY uq_audit_events_key (event_key),
    KEY ix_audit_events_time (occurred_at),
    KEY ix_audit_events_target (target, occurred_at),
    KEY ix_audit_events_run (dag_id, run_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS release_locks (
    service VARCHAR(100) NOT NULL,
    owner_run_id VARCHAR(250) NOT NULL,
    acquired_at DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    PRIMARY KEY (service)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
