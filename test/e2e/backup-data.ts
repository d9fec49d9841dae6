// A data set for backup tests: several tables and schemas, > 100 000 rows, NULLs, unicode, bytea,
// json, timestamps, floats, an empty table and large objects. Deterministic (fixed random seed).
import type { PostgresServer } from './services.ts';

export const DATASET_ROWS = { 'app.users': 20_000, 'app.requests': 100_000, 'app.virtual_keys': 1_000, 'public.documents': 3, 'app.audit': 0 };

export const DATASET_SQL = `
SELECT setseed(0.42);
CREATE SCHEMA app;
CREATE TABLE app.users (
  id integer PRIMARY KEY,
  email text NOT NULL UNIQUE,
  display_name text,
  created_at timestamptz NOT NULL,
  settings jsonb,
  balance numeric(12, 2)
);
INSERT INTO app.users
SELECT i,
       'user' || i || '@example.com',
       CASE WHEN i % 7 = 0 THEN NULL
            WHEN i % 3 = 0 THEN 'Zoë ' || i || ' — 東京 🚀'
            ELSE 'Ünïcödé ' || i || ' naïve café' END,
       timestamptz '2026-01-01 00:00:00+00' + (i || ' minutes')::interval,
       CASE WHEN i % 5 = 0 THEN NULL ELSE jsonb_build_object('theme', CASE WHEN i % 2 = 0 THEN 'dark' ELSE 'light' END, 'n', i, 'tags', jsonb_build_array('a', 'ß', i % 11)) END,
       CASE WHEN i % 4 = 0 THEN NULL ELSE round((random() * 10000)::numeric, 2) END
FROM generate_series(1, 20000) AS i;

CREATE TABLE app.requests (
  id bigserial PRIMARY KEY,
  user_id integer REFERENCES app.users (id),
  model text NOT NULL,
  tokens integer,
  cost double precision,
  payload bytea,
  at timestamptz NOT NULL
);
INSERT INTO app.requests (user_id, model, tokens, cost, payload, at)
SELECT 1 + (i % 20000),
       (ARRAY['gpt-4o', 'claude-3.5', 'llama-3-70b', 'mistral-large'])[1 + i % 4],
       CASE WHEN i % 13 = 0 THEN NULL ELSE (random() * 4000)::integer END,
       CASE WHEN i % 17 = 0 THEN NULL ELSE random() / 3 END,
       CASE WHEN i % 9 = 0 THEN NULL ELSE decode(md5(i::text) || md5((i * 7)::text), 'hex') || '\\x00ff00'::bytea END,
       timestamptz '2026-02-01 00:00:00+00' + (i || ' seconds')::interval
FROM generate_series(1, 100000) AS i;

CREATE TABLE app.virtual_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  key_hash bytea NOT NULL,
  note text,
  expires interval
);
INSERT INTO app.virtual_keys (key_hash, note, expires)
SELECT sha256(i::text::bytea), CASE WHEN i % 2 = 0 THEN NULL ELSE E'line1\\nline2\\ttab "quoted" \\\\ backslash' END, (i || ' days')::interval
FROM generate_series(1, 1000) AS i;

CREATE TABLE app.audit (id bigserial PRIMARY KEY, what text);

CREATE TABLE public.documents (id integer PRIMARY KEY, title text, content oid);
INSERT INTO public.documents VALUES
  (1, 'small large object', lo_from_bytea(0, convert_to('hello, large object — ünïcödé', 'UTF8'))),
  (2, 'binary large object', lo_from_bytea(0, decode(repeat('00ff7f80', 50000), 'hex'))),
  (3, 'no content', NULL);
CREATE VIEW app.user_costs AS SELECT u.id, sum(r.cost) AS cost FROM app.users u JOIN app.requests r ON r.user_id = u.id GROUP BY u.id;
ANALYZE;
`;

export async function loadDataset(pg: PostgresServer, database: string): Promise<void> {
  await pg.createDatabase(database);
  await pg.sql(database, DATASET_SQL);
}

export function datasetRowTotal(): number {
  return Object.values(DATASET_ROWS).reduce((a, b) => a + b, 0);
}

// ---------------------------------------------------------------------------------------------
// Running the backup CLI as an operator would (a separate process, flags, env for secrets).

import path from 'node:path';
import { run, type RunResult } from '../../scripts/lib/core/exec.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';

export const BACKUP_SCRIPT = path.join(REPO_ROOT, 'scripts', 'backup.ts');

export async function backupCli(args: string[], env: Record<string, string | undefined> = {}): Promise<RunResult & { json?: any }> {
  const r = await run(process.execPath, ['--import', 'tsx', BACKUP_SCRIPT, ...args], { env: { CI: '1', ...env }, timeoutMs: 300_000 });
  let json: any;
  if (args.includes('--json')) {
    try {
      json = JSON.parse(r.stdout);
    } catch {
      /* left undefined: the test shows stdout */
    }
  }
  return { ...r, json };
}

/** Spot checks that compare content directly (independent of the checksum SQL). */
export const SPOT_CHECK_SQL = `
SELECT json_build_object(
  'nullNames', (SELECT count(*) FROM app.users WHERE display_name IS NULL),
  'name3', (SELECT display_name FROM app.users WHERE id = 3),
  'payloadHash', (SELECT md5(string_agg(coalesce(encode(payload, 'hex'), 'NULL'), ',' ORDER BY id)) FROM app.requests),
  'costSum', (SELECT sum(cost)::text FROM app.requests),
  'notes', (SELECT md5(string_agg(coalesce(note, 'NULL') || expires::text, '|' ORDER BY key_hash)) FROM app.virtual_keys),
  'lo', (SELECT string_agg(coalesce(md5(lo_get(content)), 'NULL'), ',' ORDER BY id) FROM public.documents),
  'view', (SELECT count(*) FROM app.user_costs)
)::text;`;
