// compose.ts as a user runs it, without an engine: usage errors, validation and dry runs.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../scripts/lib/core/exec.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';
import { runScript } from '../helpers/zxscript.ts';

const FIXTURE = path.join(REPO_ROOT, 'test', 'fixtures', 'compose', 'compose.yaml');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-compose-cli-'));
const envFile = path.join(dir, 'fixture.env');
fs.writeFileSync(envFile, 'FIXTURE_IMAGE=localhost/fixture:1.0\nFIXTURE_SECRET=Qw7e8r9t0y1u2i3o4p5a\nSTORE_PORT=18081\n');
const compose = (...args: string[]) => runScript('compose', args, { timeoutMs: 60_000 });

test('usage errors exit 2', async () => {
  const cases = [[], ['launch'], ['up', 'extra-arg'], ['ps', '--volumes'], ['up', '--timeout', 'soon']];
  const results = await Promise.all(cases.map((args) => compose(...args)));
  results.forEach((r, i) => assert.is(r.exitCode, 2, `${cases[i].join(' ')}: ${r.stderr}`));
});

test('up --dry-run (docker) validates and prints the exact commands, secrets never in them', async () => {
  const r = await compose('up', '--dry-run', '--engine', 'docker', '--file', FIXTURE, '--env-file', envFile, '--json');
  assert.is(r.exitCode, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.services, ['store', 'web']);
  assert.equal(out.commands[1], ['docker', 'compose', '--file', FIXTURE, '--project-name', 'conduit-fixture', '--env-file', envFile, 'up', '--detach', '--remove-orphans']);
  assert.not.ok(r.stdout.includes('Qw7e8r9t0y1u2i3o4p5a'));
});

test('up --dry-run (podman) starts one dependency layer at a time', async () => {
  const r = await compose('up', '--dry-run', '--engine', 'podman', '--file', FIXTURE, '--env-file', envFile, '--json');
  assert.is(r.exitCode, 0, r.stderr);
  const ups = JSON.parse(r.stdout)
    .commands.slice(1)
    .map((c: string[]) => c.slice(c.indexOf('up')));
  assert.equal(ups, [
    ['up', '-d', 'store'],
    ['up', '-d', 'store', 'web'],
  ]);
});

test('down --volumes --dry-run lists the command and deletes nothing; without --yes and a terminal it refuses', async () => {
  const r = await compose('down', '--volumes', '--dry-run', '--engine', 'docker', '--file', FIXTURE, '--env-file', envFile, '--json');
  assert.is(r.exitCode, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).command.slice(-5), ['down', '--remove-orphans', '--timeout', '60', '--volumes']);
});

test('config refuses an env file with a weak secret and names the variable', async () => {
  const weak = path.join(dir, 'weak.env');
  fs.writeFileSync(weak, 'FIXTURE_IMAGE=localhost/fixture:latest\nFIXTURE_SECRET=secret\nSTORE_PORT=1\n');
  const r = await compose('config', '--engine', 'docker', '--dry-run', '--file', FIXTURE, '--env-file', weak);
  assert.is(r.exitCode, 1);
  assert.match(r.stderr, /FIXTURE_SECRET is a placeholder or a well-known default/);
  assert.match(r.stderr, /services\.store\.image localhost\/fixture:latest uses the moving tag latest/);
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
test.run();
