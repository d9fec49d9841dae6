-- Per-table row counts and content checksums of the current database, as one JSON array on one line.
-- Shared by `scripts/backup.ts` (create and verify) and the in-cluster backup job, so both compute
-- exactly the same numbers. Run it inside the snapshot the dump uses (REPEATABLE READ + pg_dump
-- --snapshot) and the numbers describe exactly what the dump holds.
--
-- The checksum of a table is independent of row order (a restore may lay rows out differently):
-- a 64-bit hash of every row is summed over the table (an exact numeric sum: no overflow, and
-- duplicate rows do not cancel) and the sum is hashed with md5. The row hash comes in two kinds:
-- - `rec:` checksums (PostgreSQL 14 and later, tables whose columns all have types from a fixed
--   list below): hash_record_extended over the row's typed values, the hash functions that hash
--   partitioning relies on (stable across versions and platforms), over ROW(the columns), which
--   hashes the same as the whole row but skips copying each row first. No text form is built,
--   which makes it about three times cheaper. Types whose hash depends on OIDs a restore renumbers (enums,
--   reg* types) and text under a nondeterministic collation are left out of the list.
-- - plain checksums (other tables, older servers, and `\set stats_checksum text`, which verify uses
--   for manifests written before `rec:` existed): the row's text form hashed twice with
--   hashtextextended (seeds 0 and 1), both sums md5-hashed together. OFFSET 0 keeps the planner
--   from computing the text form twice. The text form depends on a few session settings; they are
--   pinned here so that dump and restore agree.
-- Which kind a table gets depends only on its column types and the server version, so a restore of
-- the same dump gets the same kind. The query runs on a second connection next to pg_dump without
-- parallel workers: a backup should not take more of the server's cores than that.
-- Large objects are reported as the pseudo-table pg_catalog.pg_largeobject (oid plus content hash).
\if :{?stats_checksum}
\else
\set stats_checksum auto
\endif
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET extra_float_digits = 1;
SET bytea_output = 'hex';
SET max_parallel_workers_per_gather = 0;
WITH user_tables AS (
  SELECT n.nspname AS schema_name, c.relname AS table_name,
    :'stats_checksum' = 'auto'
    AND pg_catalog.current_setting('server_version_num')::integer >= 140000
    AND NOT EXISTS (
      SELECT 1
      FROM pg_catalog.pg_attribute a
      LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        AND (a.atttypid <> ALL (ARRAY['bool', 'int2', 'int4', 'int8', 'float4', 'float8', 'numeric', 'text', 'varchar', 'bpchar', 'bytea',
                                      'uuid', 'jsonb', 'date', 'time', 'timestamp', 'timestamptz', 'interval',
                                      '_int4', '_int8', '_text', '_varchar', '_uuid']::pg_catalog.regtype[]::pg_catalog.oid[])
             OR NOT coalesce(co.collisdeterministic, true))
    ) AS hashable,
    (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum)
     FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\_toast%'
    AND n.nspname NOT LIKE 'pg\_temp%'
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
  -- A fence: the list of tables is complete before any table is read. Without it the planner may
  -- run the per-table query below for pairs of a table and a namespace that are not its own and
  -- filter them only afterwards (reading tables twice, or failing on a name that does not exist).
  OFFSET 0
),
table_stats AS (
  SELECT t.schema_name, t.table_name, t.hashable, x.stats
  FROM user_tables t,
  LATERAL pg_catalog.query_to_xml(
    CASE WHEN t.hashable THEN
      format('SELECT count(*) AS n, coalesce(sum(pg_catalog.hash_record_extended(%s, 0)), 0) AS a, 0 AS b FROM ONLY %I.%I r',
        CASE WHEN t.columns IS NULL THEN 'r' ELSE 'ROW(' || t.columns || ')' END, t.schema_name, t.table_name)
    ELSE
      format('SELECT count(*) AS n, coalesce(sum(pg_catalog.hashtextextended(x, 0)), 0) AS a, coalesce(sum(pg_catalog.hashtextextended(x, 1)), 0) AS b '
        || 'FROM (SELECT r::text AS x FROM ONLY %I.%I r OFFSET 0) s',
        t.schema_name, t.table_name)
    END,
    false, true, '') AS x(stats)
  UNION ALL
  SELECT 'pg_catalog', 'pg_largeobject', false, x.stats
  FROM pg_catalog.query_to_xml(
    'SELECT count(*) AS n, coalesce(sum(pg_catalog.hashtextextended(x, 0)), 0) AS a, coalesce(sum(pg_catalog.hashtextextended(x, 1)), 0) AS b '
    || 'FROM (SELECT m.oid::text || '':'' || md5(pg_catalog.lo_get(m.oid)) AS x FROM pg_catalog.pg_largeobject_metadata m OFFSET 0) lo',
    false, true, '') AS x(stats)
)
SELECT coalesce(jsonb_agg(jsonb_build_object(
         'schema', schema_name,
         'table', table_name,
         'rows', ((xpath('/row/n/text()', stats))[1]::text)::bigint,
         'checksum', CASE WHEN hashable THEN 'rec:' || md5((xpath('/row/a/text()', stats))[1]::text)
                          ELSE md5(((xpath('/row/a/text()', stats))[1]::text) || ':' || ((xpath('/row/b/text()', stats))[1]::text)) END
       ) ORDER BY schema_name, table_name), '[]'::jsonb)::text
FROM table_stats;
