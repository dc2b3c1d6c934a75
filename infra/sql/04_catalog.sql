-- What the catalog tells about tables a role may not read. Run as a superuser in the warehouse
-- database (the catalog's objects belong to the bootstrap superuser). Idempotent.
--
-- PostgreSQL lets every role read every table's statistics, whatever its privileges on the
-- table: pg_class's row estimates and page counts, pg_relation_size(), the pg_stat_* views and
-- functions (live rows, rows inserted), WAL positions, other sessions' locks and transaction
-- ids. Polled, they give each load's rows read and quarantined to a role that may read neither.
-- The viewer (dashboards: the published layer only) must learn nothing of the kind, so:
--
-- * pg_class and pg_database: PUBLIC may read the columns that describe a relation or a
--   database (name, kind, owner, ...), an allow-list; the ones that measure them (relpages,
--   reltuples, relallvisible, relallfrozen) or date their rewrites and vacuums (relfilenode,
--   relfrozenxid, relminmxid, datfrozenxid, datminmxid) are withheld, and so is every column a
--   later PostgreSQL adds until it is listed here.
-- * functions that measure relations, databases, WAL or other sessions' activity: PUBLIC may
--   not execute them (the pg_stat_* views call them, so those views go too).
--
-- The pipeline's roles keep everything (they read the tables anyway); the viewer keeps only
-- PUBLIC's rights. tests/test_viewer_isolation.py attacks this as the viewer by asking every
-- catalog column and function before and after rows are added to a table it may not read.
do $$
declare
    pipeline constant text := concat_ws(', ', quote_ident(:'loader'),
        quote_ident(:'transformer'), quote_ident(:'analyst'), quote_ident(:'engineer'));
    describes constant text[] := array[
        -- pg_class
        'oid', 'relname', 'relnamespace', 'reltype', 'reloftype', 'relowner', 'relam',
        'reltablespace', 'reltoastrelid', 'relhasindex', 'relisshared', 'relpersistence',
        'relkind', 'relnatts', 'relchecks', 'relhasrules', 'relhastriggers', 'relhassubclass',
        'relrowsecurity', 'relforcerowsecurity', 'relispopulated', 'relreplident',
        'relispartition', 'relrewrite', 'relacl', 'reloptions', 'relpartbound',
        -- pg_database
        'datname', 'datdba', 'encoding', 'datlocprovider', 'datistemplate', 'datallowconn',
        'dathasloginevt', 'datconnlimit', 'dattablespace', 'datcollate', 'datctype',
        'datlocale', 'daticulocale', 'daticurules', 'datcollversion', 'datacl'];
    catalog regclass;
    cols text;
    f regprocedure;
begin
    foreach catalog in array array['pg_catalog.pg_class', 'pg_catalog.pg_database']::regclass[]
    loop
        select string_agg(quote_ident(attname), ', ' order by attnum) into cols
        from pg_attribute
        where attrelid = catalog and attnum > 0 and not attisdropped
          and attname = any(describes);
        execute format('revoke select on %s from public', catalog);
        execute format('grant select (%s) on %s to public', cols, catalog);
        execute format('grant select on %s to %s', catalog, pipeline);
    end loop;

    for f in
        select p.oid::regprocedure from pg_proc p
        where p.pronamespace = 'pg_catalog'::regnamespace
          and (p.proname like 'pg\_stat\_%'          -- table, index, database, I/O statistics
               or p.proname like 'pg\_current\_wal%'  -- WAL positions: bytes written
               or p.proname like 'pg\_last\_wal%'
               or p.proname in (
                   'pg_relation_size', 'pg_table_size', 'pg_indexes_size',
                   'pg_total_relation_size', 'pg_database_size', 'pg_tablespace_size',
                   'pg_relation_filenode', 'pg_relation_filepath', 'pg_filenode_relation',
                   'pg_sequence_last_value',
                   -- other sessions: their locks (which tables a load is writing, and for how
                   -- long) and the transaction counter
                   'pg_lock_status', 'pg_blocking_pids', 'pg_safe_snapshot_blocking_pids',
                   'pg_current_snapshot', 'pg_current_xact_id',
                   'pg_current_xact_id_if_assigned', 'txid_current',
                   'txid_current_if_assigned', 'txid_current_snapshot'))
    loop
        execute format('revoke execute on function %s from public', f);
        execute format('grant execute on function %s to %s', f, pipeline);
    end loop;
exception when insufficient_privilege then
    -- a managed server's administrator is often no superuser: say so, change nothing
    raise warning 'not a superuser: the viewer can still read table statistics; '
        'have a superuser apply infra/sql/04_catalog.sql (see the README)';
end
$$;
