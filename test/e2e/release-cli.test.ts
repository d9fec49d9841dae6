// The release command line itself: help, usage errors (exit 2, nothing changed), and dry runs that
// print their plan without touching the repository directory or the destination.
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { jsonOf, releaseCli, tempDir } from './release-harness.ts';

const test = suite('release: command line');
let work: string;

test.before(() => {
  work = tempDir('release-cli');
});

test.after(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

test('--help names every verb, the signing flags and the passphrase variable', async () => {
  const r = await releaseCli(['--help']);
  assert.is(r.exitCode, 0);
  for (const word of ['check', 'package', 'index', 'publish', 'push-oci', '--sign', '--keyring', '--dry-run', '--helm', 'CONDUIT_SIGN_PASSPHRASE']) assert.ok(r.stdout.includes(word), word);
});

test('usage errors exit 2 with a hint and change nothing', async () => {
  const out = path.join(work, 'untouched');
  const cases: [string[], RegExp][] = [
    [[], /a verb is required/],
    [['ship'], /unknown verb "ship"/],
    [['package', '--key', 'k', '--out', out], /need --sign/],
    [['package', '--sign', '--out', out], /--sign needs --key/],
    [['index', '--out', out], /index needs --url/],
    [['index', '--out', out, '--url', 'ftp://x.example'], /must be http\(s\)/],
    [['publish', '--out', out], /publish needs --to/],
    [['push-oci', '--out', out, '--registry', 'https://r.example/c'], /not oci:\/\/HOST/],
    [['check', '--to', out], /check does not take --to/],
    [['package', '--helm', '5', '--out', out], /--helm must be 3 or 4/],
  ];
  for (const [args, message] of cases) {
    const r = await releaseCli(args);
    assert.is(r.exitCode, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
  }
  assert.not.ok(fs.existsSync(out), 'nothing was created');
});

test('package, index and publish --dry-run print their plans and write nothing', async () => {
  const out = path.join(work, 'out');
  const pkg = await releaseCli(['package', '--out', out, '--dry-run', '--json']);
  assert.is(pkg.exitCode, 0, pkg.stderr);
  const plan = jsonOf(pkg).plan;
  assert.is(plan.steps[0].tool, 'helm');
  assert.equal(plan.steps[0].args.slice(0, 1), ['package']);
  assert.not.ok(fs.existsSync(out));

  // A real package to index, then dry runs of index and publish around it.
  assert.is((await releaseCli(['package', '--out', out])).exitCode, 0);
  const before = fs.readdirSync(out).sort();
  const idx = await releaseCli(['index', '--out', out, '--url', 'https://charts.example.com/conduit', '--dry-run']);
  assert.is(idx.exitCode, 0, idx.stderr);
  assert.match(idx.stdout, /helm repo index .* --url https:\/\/charts\.example\.com\/conduit/);
  assert.equal(fs.readdirSync(out).sort(), before, 'index --dry-run wrote nothing');

  assert.is((await releaseCli(['index', '--out', out, '--url', 'https://charts.example.com/conduit'])).exitCode, 0);
  const dest = path.join(work, 'published');
  const pub = await releaseCli(['publish', '--out', out, '--to', dest, '--dry-run']);
  assert.is(pub.exitCode, 0, pub.stderr);
  assert.match(pub.stdout.trim().split('\n').at(-1)!, /copy .*index\.yaml .*last/);
  assert.not.ok(fs.existsSync(dest), 'publish --dry-run wrote nothing');
});

test.run();
