-- Per-table row counts and content checksums of the current database, as one JSON array on one line.
-- Shared by `scripts/backup.ts` (create and verify) and the in-cluster backup job, so both compute
-- exactly the same numbers. Run it inside the snapshot the dump uses (REPEATABLE READ + pg_dump
-- --snapshot) and the numbers describe exactly what the dump holds.
--
-- The checksum of a table is independent of row order (a restore may lay rows out differently):
-- every row's text form is hashed twice with the built-in 64-bit hashtextextended (seeds 0 and 1;
-- the same function hash partitioning relies on, so it is stable across platforms), each kind of
-- hash is summed over the table (exact numeric sums: no overflow, duplicates do not cancel) and
-- the two sums are hashed with md5. Each row's text form is computed once for both hashes (OFFSET 0
-- keeps the planner from merging the inner query into the sums, which would compute it twice). It
-- runs on a second connection next to pg_dump and costs the server about twice the CPU of pg_dump's
-- COPY of the same rows. The text form of a row depends on a few session settings; they are pinned
-- here so that dump and restore agree.
-- Large objects are reported as the pseudo-table pg_catalog.pg_largeobject (oid plus content hash).
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
SET extra_float_digits = 1;
SET bytea_output = 'hex';
WITH user_tables AS (
  SELECT n.nspname AS schema_name, c.relname AS table_name
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\_toast%'
    AND n.nspname NOT LIKE 'pg\_temp%'
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
),
table_stats AS (
  SELECT t.schema_name, t.table_name, x.stats
  FROM user_tables t,
  LATERAL pg_catalog.query_to_xml(
    format(
      'SELECT count(*) AS n, coalesce(sum(pg_catalog.hashtextextended(x, 0)), 0) AS a, coalesce(sum(pg_catalog.hashtextextended(x, 1)), 0) AS b '
      || 'FROM (SELECT r::text AS x FROM ONLY %I.%I r OFFSET 0) s',
      t.schema_name, t.table_name),
    false, true, '') AS x(stats)
  UNION ALL
  SELECT 'pg_catalog', 'pg_largeobject', x.stats
  FROM pg_catalog.query_to_xml(
    'SELECT count(*) AS n, coalesce(sum(pg_catalog.hashtextextended(x, 0)), 0) AS a, coalesce(sum(pg_catalog.hashtextextended(x, 1)), 0) AS b '
    || 'FROM (SELECT m.oid::text || '':'' || md5(pg_catalog.lo_get(m.oid)) AS x FROM pg_catalog.pg_largeobject_metadata m OFFSET 0) lo',
    false, true, '') AS x(stats)
)
SELECT coalesce(jsonb_agg(jsonb_build_object(
         'schema', schema_name,
         'table', table_name,
         'rows', ((xpath('/row/n/text()', stats))[1]::text)::bigint,
         'checksum', md5(((xpath('/row/a/text()', stats))[1]::text) || ':' || ((xpath('/row/b/text()', stats))[1]::text))
       ) ORDER BY schema_name, table_name), '[]'::jsonb)::text
FROM table_stats;
