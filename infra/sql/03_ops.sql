-- The audit trail: one row per file delivered, whatever became of it. Owned by the loader.
set role :"loader";

create table if not exists ops.batches (
    batch_id            uuid primary key,
    source_name         text not null,          -- the contract that read it
    source_kind         text not null,
    file_name           text not null,          -- base name only; the drop folder is not exposed
    file_sha256         char(64) not null,
    file_bytes          bigint not null,
    status              text not null check (status in
                            ('landing', 'landed', 'loaded', 'loaded_with_warnings',
                             'quarantined', 'rejected', 'duplicate', 'failed')),
    rows_read           bigint,
    rows_loaded         bigint,
    rows_quarantined    bigint,
    message             text,                   -- what a data engineer reads first
    run_by              text not null,          -- e.g. airflow:<dag>/<run_id> or cli:<user>
    held_until_loaded   boolean not null default false, -- see below
    started_at          timestamptz not null,
    finished_at         timestamptz,
    constraint rows_add_up check (
        rows_read is null or rows_loaded is null or rows_quarantined is null
        or rows_read = rows_loaded + rows_quarantined)
);

-- A batch 'landed' by a run that holds its lock until it has loaded it (the CLI): once the lock
-- is free, that run is gone and the batch is released at once. Batches landed by an Airflow task
-- (loaded by another task, in another process) are released after an hour instead.
alter table ops.batches add column if not exists held_until_loaded boolean not null default false;

-- the same content is loaded once per source, whatever the file is called
create unique index if not exists batches_loaded_once
    on ops.batches (source_name, file_sha256)
    where status in ('loaded', 'loaded_with_warnings');

create table if not exists ops.batch_issues (
    issue_id        bigserial primary key,
    batch_id        uuid not null references ops.batches (batch_id),
    rule            text not null,      -- the expectation or rule that failed
    column_name     text,
    row_count       bigint not null,
    example_rows    bigint[] not null,  -- source row numbers (1 = first data row)
    severity        text not null check (severity in ('error', 'warning')),
    message         text not null
);
create index if not exists batch_issues_batch on ops.batch_issues (batch_id);

-- Every publication refresh: one row per `dbt build` (safeguard.transform.build), written by
-- the transformer as it starts ('running') and when it ends, with dbt's own counts. Still owned
-- by the loader, like the rest of the audit trail; the transformer may only add and finish rows.
create table if not exists ops.publication_runs (
    run_id          uuid primary key,
    started_at      timestamptz not null,
    finished_at     timestamptz,
    status          text not null check (status in ('running', 'success', 'failed')),
    selection       text not null,          -- the dbt selection, or 'all'
    models_built    int,                    -- from dbt's run_results.json; NULL while running
    tests_passed    int,                    -- data and unit tests (warnings count as passed)
    tests_failed    int,
    run_by          text not null,          -- e.g. airflow:safeguard_transform/<run_id> or cli:<user>
    message         text,                   -- what failed: nodes and rules, never row values
    constraint finished_unless_running check ((status = 'running') = (finished_at is null))
);
create index if not exists publication_runs_started on ops.publication_runs (started_at);
grant select, insert, update on ops.publication_runs to :"transformer";
grant select on ops.publication_runs to :"analyst";

-- Releases (safeguard.release): the published tables change only through one. A release is
-- numbered, has the date it was made as of (periods whose embargo had passed by then are in it)
-- and the dbt build it published; its rows are in releases.release_rows. Per table, what it
-- changed: groups of cells (a period of the table's grain, or the whole table) new, revised,
-- held back (a revision the gate refused: kept as released before) or still under embargo.
-- Counts of groups and cells only, never values. The transformer may only add rows.
create table if not exists ops.releases (
    release_no          int primary key,
    as_of_date          date not null,
    embargo_days        int not null,
    released_at         timestamptz not null,
    run_by              text not null,
    publication_run_id  uuid,                   -- the last successful dbt build before it
    tables_changed      int not null,
    rows_published      bigint not null
);
create table if not exists ops.release_tables (
    release_no          int not null references ops.releases (release_no),
    table_name          text not null,
    rows_published      bigint not null,
    groups_new          int not null,           -- periods published for the first time
    groups_revised      int not null,           -- periods published again, changed
    groups_held         int not null,           -- revisions refused by the gate
    groups_embargoed    int not null,           -- periods in the candidate still under embargo
    cells_changed       int not null,           -- published counts that changed
    cells_held          int not null,           -- counts that would have changed, held back
    held_periods        text,                   -- which periods were held, and by which rule
    primary key (release_no, table_name)
);
grant select, insert on ops.releases, ops.release_tables to :"transformer";
grant select on ops.releases, ops.release_tables to :"analyst";

-- The pseudonym key's fingerprint (HMAC of a fixed text under the key: it does not reveal the
-- key), recorded at first use. Pseudonymous case keys made with another key would never match
-- the ones already loaded, splitting every case from its later deliveries: a load with another
-- key is refused (safeguard.ingest.keys). A planned rotation retires a fingerprint.
create table if not exists ops.pseudonym_keys (
    fingerprint     text primary key,
    first_used_at   timestamptz not null default now(),
    retired_at      timestamptz
);
create unique index if not exists pseudonym_keys_one_in_use
    on ops.pseudonym_keys ((true)) where retired_at is null;

reset role;
