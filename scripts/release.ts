#!/usr/bin/env -S npx zx
// release.ts: check, package (optionally signed), index, publish and push the chart.
import fs from 'node:fs';
import path from 'node:path';
import { runCommand } from './lib/core/cli.ts';
import { UserError, usageError } from './lib/core/errors.ts';
import { registerSecret } from './lib/core/redact.ts';
import { Helm, helmMajor, type HelmMajor } from './lib/adapters/helm.ts';
import { helmClient } from './lib/domain/target.ts';
import { displayPath } from './lib/core/paths.ts';
import { openStorage } from './lib/adapters/storage.ts';
import { table, type Reporter } from './lib/core/ui.ts';
import {
  conflictingEntries,
  DEFAULT_OUT_DIR,
  describeStep,
  executePlan,
  fetchExistingIndex,
  gpgFingerprint,
  requireGpg,
  localPackages,
  makeWorkDir,
  packageFileName,
  parsePushDigest,
  planIndex,
  planPackage,
  planPublish,
  planPushOci,
  readChartMeta,
  readIndexEntries,
  releaseTag,
  runReleaseChecks,
  sha256File,
  sourceDateEpoch,
  validateOciRegistry,
  validateRepoUrl,
  type Plan,
  type SigningInput,
} from './lib/engines/release.ts';

const PASSPHRASE_ENV = 'CONDUIT_SIGN_PASSPHRASE';

const spec = {
  name: 'release.ts',
  summary: 'Release the conduit chart: pre-release checks, package (GPG-signed), HTTP repository index, publish, OCI push.',
  usage: [
    'npx zx scripts/release.ts check [--skip-validate] [--helm 3|4] [--json]',
    'npx zx scripts/release.ts package [--sign --key NAME [--keyring FILE] [--key-url URL]] [--out DIR] [--dry-run] [--helm 3|4] [--json]',
    'npx zx scripts/release.ts index --url URL [--merge FILE|URL] [--out DIR] [--dry-run] [--helm 3|4] [--json]',
    'npx zx scripts/release.ts publish --to DIR|s3://BUCKET/PREFIX [--s3-endpoint URL] [--out DIR] [--dry-run] [--json]',
    'npx zx scripts/release.ts push-oci --registry oci://HOST/PATH [--plain-http] [--package FILE] [--dry-run] [--helm 3|4] [--json]',
  ],
  verbs: {
    check:
      'Everything that must hold before a release: version bumped since the last conduit-chart-X.Y.Z tag, CHANGELOG entry, artifacthub.io/changes, upgrade notes, generated docs, chart files, images vs appVersion, helm lint, validate.ts --all.',
    package: 'helm package into --out; with --sign also the .prov provenance and the public key (pubkey.gpg, pubkey.asc).',
    index: 'helm repo index of --out with the repository URL, keeping the entries of the published index (--merge); writes artifacthub-repo.yml.',
    publish: 'Copy packages, provenance, keys and index.yaml (last) from --out to a directory or an S3 bucket, each file atomically; released packages are never overwritten.',
    'push-oci': 'helm push the package (and its .prov) to an OCI registry and print the manifest digest.',
  },
  flags: {
    helm: { type: 'string' as const, arg: '3|4', description: 'Helm major to use (default: CONDUIT_HELM_MAJOR or 4).' },
    chart: { type: 'string' as const, arg: 'DIR', description: 'Chart directory (default: chart/).' },
    out: { type: 'string' as const, arg: 'DIR', description: `Repository working directory for package/index/publish (default: ${displayPath(DEFAULT_OUT_DIR)}).` },
    'dry-run': { type: 'boolean' as const, description: 'Print the plan (commands and files), change nothing.' },
    sign: { type: 'boolean' as const, description: 'package: sign with GPG (writes NAME-VERSION.tgz.prov).' },
    key: { type: 'string' as const, arg: 'NAME', description: 'package --sign: the signing key (user id, e-mail or fingerprint).' },
    keyring: { type: 'string' as const, arg: 'FILE', description: 'package --sign: a legacy secret keyring; default: the key is exported from GNUPGHOME for this run only.' },
    'passphrase-file': { type: 'string' as const, arg: 'FILE', description: `package --sign: file holding the key passphrase (or set ${PASSPHRASE_ENV}); never pass it on the command line.` },
    'key-url': { type: 'string' as const, arg: 'URL', description: 'package --sign: public URL of pubkey.asc; adds artifacthub.io/signKey to the packaged Chart.yaml.' },
    url: { type: 'string' as const, arg: 'URL', description: 'index: public base URL of the chart repository.' },
    merge: { type: 'string' as const, arg: 'FILE|URL', description: 'index: the published index.yaml (file or http(s) URL) whose entries are kept.' },
    'repository-id': { type: 'string' as const, arg: 'UUID', description: 'index: Artifact Hub repository ID for artifacthub-repo.yml.' },
    owner: { type: 'string' as const, multiple: true as const, arg: '"NAME <EMAIL>"', description: 'index: Artifact Hub repository owner for artifacthub-repo.yml.' },
    to: { type: 'string' as const, arg: 'DIR|s3://B/P', description: 'publish: destination directory or S3 bucket/prefix (served as the chart repository).' },
    registry: { type: 'string' as const, arg: 'oci://HOST/PATH', description: 'push-oci: the OCI repository to push to.' },
    'plain-http': { type: 'boolean' as const, description: 'push-oci: talk plain HTTP to the registry (local registries only).' },
    package: { type: 'string' as const, arg: 'FILE', description: 'push-oci: the package to push (default: --out/NAME-VERSION.tgz).' },
    's3-endpoint': { type: 'string' as const, arg: 'URL', description: 'publish to s3://: S3-compatible endpoint (default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS).' },
    's3-region': { type: 'string' as const, arg: 'REGION', description: 'publish to s3://: region (default: AWS_REGION, else us-east-1).' },
    's3-access-key-env': { type: 'string' as const, arg: 'VAR', description: 'publish to s3://: variable holding the access key id (default: AWS_ACCESS_KEY_ID).' },
    's3-secret-key-env': { type: 'string' as const, arg: 'VAR', description: 'publish to s3://: variable holding the secret key (default: AWS_SECRET_ACCESS_KEY).' },
    'skip-validate': { type: 'boolean' as const, description: 'check: do not run validate.ts --all (reported as skipped).' },
  },
  examples: [
    'npx zx scripts/release.ts check',
    'CONDUIT_SIGN_PASSPHRASE=... npx zx scripts/release.ts package --sign --key releases@example.com --key-url https://charts.example.com/pubkey.asc',
    'npx zx scripts/release.ts index --url https://charts.example.com --merge https://charts.example.com/index.yaml',
    'npx zx scripts/release.ts publish --to /srv/charts --dry-run',
    'npx zx scripts/release.ts publish --to s3://acme-charts/conduit',
    'npx zx scripts/release.ts push-oci --registry oci://ghcr.io/acme/charts',
  ],
  notes: [
    'Environment:',
    `  ${PASSPHRASE_ENV}   passphrase of the signing key (handed to gpg and helm in a 0600 temporary file, never on a command line)`,
    '  GNUPGHOME                 GnuPG home holding the signing key',
    '  CONDUIT_HELM_MAJOR        3 or 4 (default 4)',
    '  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL   S3 credentials and endpoint for publish --to s3://',
  ],
};

type Flags = Parameters<Parameters<typeof runCommand<typeof spec.flags>>[1]>[0]['flags'];

function only(flags: Flags, verb: string, allowed: string[]): void {
  const given = Object.entries(flags)
    .filter(([k, v]) => !['json', 'help', 'helm', 'chart', 'out', 'dry-run'].includes(k) && v !== undefined && v !== false && !(Array.isArray(v) && !v.length))
    .map(([k]) => k);
  const bad = given.filter((k) => !allowed.includes(k));
  if (bad.length) throw usageError(`${verb} does not take ${bad.map((b) => '--' + b).join(', ')}`, `See npx zx scripts/release.ts --help.`);
}

function readPassphrase(flags: Flags): string | undefined {
  let p: string | undefined;
  if (flags['passphrase-file']) {
    if (!fs.existsSync(flags['passphrase-file'])) throw usageError(`--passphrase-file ${flags['passphrase-file']} does not exist`);
    p = fs.readFileSync(flags['passphrase-file'], 'utf8').replace(/\r?\n$/, '');
  } else if (process.env[PASSPHRASE_ENV]) p = process.env[PASSPHRASE_ENV];
  registerSecret(p);
  return p;
}

function clip(s: string, n: number): string {
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

function planText(plan: Plan): string {
  return plan.steps.map((s, i) => `${String(i + 1).padStart(2)}. ${describeStep(s)}`).join('\n');
}

function planJson(plan: Plan) {
  return { verb: plan.verb, helm: plan.helm, steps: plan.steps.map((s) => ({ ...s, ...('content' in s ? { content: undefined } : {}), text: describeStep(s) })), outputs: plan.outputs };
}

function artifactSummary(files: string[]): { file: string; sha256: string; bytes: number }[] {
  return files.filter((f) => fs.existsSync(f)).map((f) => ({ file: f, sha256: sha256File(f), bytes: fs.statSync(f).size }));
}

/** What every verb works with: the parsed flags, the reporter, and the choices all verbs share. */
interface VerbContext {
  flags: Flags;
  reporter: Reporter;
  major: HelmMajor;
  /**
   * Builds the plans' helm argv. It names no binary: the pinned helm is resolved (and installed when
   * missing) only when a plan runs, so --dry-run needs none.
   */
  planner: Helm;
  chartDir: string;
  outDir: string;
  dryRun: boolean;
}

/** Print the plan on a dry run (false), or carry it out (true). */
async function execute(c: VerbContext, plan: Plan, passphrase?: string): Promise<boolean> {
  if (c.dryRun) {
    printDryRun(c, plan);
    return false;
  }
  const helm = await c.reporter.step(`helm ${c.major}`, () => helmClient(c.major));
  await c.reporter.step(`${plan.verb}: ${plan.steps.length} step(s)`, (progress) => executePlan(plan, { helm, gpgPath: 'gpg', passphrase, progress }));
  return true;
}

function printDryRun(c: VerbContext, plan: Plan): void {
  c.reporter.result(`Dry run: ${plan.verb} would do (nothing changed):\n${planText(plan)}`, { ok: true, dryRun: true, plan: planJson(plan) });
}

/** Create a scratch directory for `fn` and remove it afterwards, whatever happens. */
async function inWorkDir<T>(fn: (workDir: string) => Promise<T>): Promise<T> {
  const workDir = makeWorkDir();
  try {
    return await fn(workDir);
  } finally {
    fs.rmSync(workDir, { recursive: true, force: true });
  }
}

async function checkVerb(c: VerbContext): Promise<number> {
  only(c.flags, 'check', ['skip-validate']);
  const meta = readChartMeta(c.chartDir);
  const helm = await helmClient(c.major);
  const results = await runReleaseChecks({ meta, helm, skipValidate: c.flags['skip-validate'], step: (t, fn) => c.reporter.step(t, () => fn()) });
  const failed = results.filter((r) => r.status === 'failed');
  const human = [
    `${meta.name} ${meta.version} (appVersion ${meta.appVersion}), tag ${releaseTag(meta.version)}`,
    table(
      ['check', 'result', 'detail'],
      results.map((r) => [r.name, r.status.toUpperCase(), clip(r.message.split('\n')[0], 110)]),
    ),
    ...failed.map((r) => `\n${r.name} FAILED: ${r.message}${r.hint ? `\nfix: ${r.hint}` : ''}`),
    `\n${results.length - failed.length} of ${results.length} checks passed or skipped; ${failed.length} failed.`,
  ].join('\n');
  c.reporter.result(human, { ok: failed.length === 0, chart: meta.name, version: meta.version, appVersion: meta.appVersion, tag: releaseTag(meta.version), checks: results });
  return failed.length ? 1 : 0;
}

/** package --sign: the flags checked, the passphrase read and the key found (warnings for what is missing). */
async function signingSetup(c: VerbContext): Promise<{ passphrase?: string; fingerprint?: string }> {
  const { flags, reporter } = c;
  if (!flags.sign && (flags.key || flags.keyring || flags['key-url'] || flags['passphrase-file'])) throw usageError('--key, --keyring, --key-url and --passphrase-file need --sign');
  if (flags.sign && !flags.key) throw usageError('--sign needs --key NAME', 'Name the signing key (user id, e-mail or fingerprint): gpg --list-secret-keys.');
  if (flags.keyring && !fs.existsSync(flags.keyring)) throw usageError(`--keyring ${flags.keyring} does not exist`);
  const passphrase = flags.sign ? readPassphrase(flags) : undefined;
  const gpg = flags.sign ? await requireGpg() : 'gpg';
  const fingerprint = flags.sign && !flags.keyring ? await gpgFingerprint(gpg, flags.key!) : undefined;
  if (flags.sign && !flags.keyring && !fingerprint) {
    throw new UserError(`gpg does not know the key "${flags.key}"${process.env.GNUPGHOME ? ` (GNUPGHOME=${process.env.GNUPGHOME})` : ''}`, {
      hint: 'List keys with gpg --list-secret-keys, or pass --keyring with a legacy secret keyring.',
      exitCode: 2,
    });
  }
  if (flags.sign && !flags['key-url']) reporter.warn('no --key-url: the package carries no artifacthub.io/signKey annotation, so Artifact Hub will not show it as signed');
  if (flags.sign && flags['key-url'] && flags.keyring) reporter.warn('--key-url with --keyring: the key fingerprint is not known from GNUPGHOME, so no artifacthub.io/signKey annotation is added');
  if (flags.sign && flags.keyring) reporter.warn('--keyring: no public key files are written; publish the public key (binary, for helm --keyring) yourself');
  return { passphrase, fingerprint };
}

function signingInput(flags: Flags, s: { passphrase?: string; fingerprint?: string }): SigningInput | undefined {
  if (!flags.sign) return undefined;
  return {
    key: flags.key!,
    keyring: flags.keyring ? path.resolve(flags.keyring) : undefined,
    fingerprint: s.fingerprint,
    keyUrl: flags['key-url'],
    hasPassphrase: s.passphrase !== undefined,
    passphraseFile: flags['passphrase-file'] ? path.resolve(flags['passphrase-file']) : undefined,
  };
}

async function packageVerb(c: VerbContext): Promise<number> {
  const { flags, reporter, major } = c;
  only(flags, 'package', ['sign', 'key', 'keyring', 'passphrase-file', 'key-url']);
  const meta = readChartMeta(c.chartDir);
  const signing = await signingSetup(c);
  return inWorkDir(async (workDir) => {
    const plan = planPackage({ meta, helm: c.planner, outDir: c.outDir, workDir, sourceDateEpoch: await sourceDateEpoch(c.chartDir), sign: signingInput(flags, signing) });
    if (!(await execute(c, plan, signing.passphrase))) return 0;
    const artifacts = artifactSummary(plan.outputs);
    reporter.result(
      `Packaged ${meta.name} ${meta.version} with helm ${major}${flags.sign ? ` and signed it (key ${signing.fingerprint ?? flags.key})` : ''}:\n${table(
        ['file', 'sha256', 'bytes'],
        artifacts.map((a) => [displayPath(a.file), a.sha256, a.bytes]),
      )}`,
      { ok: true, chart: meta.name, version: meta.version, signed: flags.sign, fingerprint: signing.fingerprint, artifacts, plan: planJson(plan) },
    );
    return 0;
  });
}

function parseOwners(owners: string[]): { name: string; email: string }[] {
  return owners.map((o) => {
    const m = /^\s*(.+?)\s*<([^>]+@[^>]+)>\s*$/.exec(o);
    if (!m) throw usageError(`--owner "${o}" is not "NAME <EMAIL>"`);
    return { name: m[1], email: m[2] };
  });
}

async function indexVerb(c: VerbContext): Promise<number> {
  const { flags, reporter, outDir } = c;
  only(flags, 'index', ['url', 'merge', 'repository-id', 'owner']);
  if (!flags.url) throw usageError('index needs --url URL', 'The public base URL where index.yaml and the packages will be served.');
  const url = flags.url;
  validateRepoUrl(url);
  const owners = parseOwners(flags.owner);
  const packages = localPackages(outDir);
  if (!packages.length) throw new UserError(`no chart packages in ${displayPath(outDir)}`, { hint: 'Run `release.ts package` first (or point --out at the directory holding the .tgz files).' });
  return inWorkDir(async (workDir) => {
    const merge = flags.merge ? await reporter.step(`reading the published index ${flags.merge}`, () => fetchExistingIndex(flags.merge!, workDir)) : undefined;
    if (flags.merge && !merge) reporter.info(`${flags.merge} does not exist yet: this is the repository's first index`);
    const existing = merge ? readIndexEntries(fs.readFileSync(merge, 'utf8')) : [];
    const conflicts = conflictingEntries(existing, packages);
    if (conflicts.length) {
      throw new UserError(`released versions cannot change: ${conflicts.join('; ')}`, { hint: 'Bump the chart version; a published package must never be replaced.', details: { conflicts } });
    }
    const plan = planIndex({ dir: outDir, url, helm: c.planner, merge, artifactHub: { repositoryId: flags['repository-id'], owners } });
    if (!(await execute(c, plan))) return 0;
    const entries = readIndexEntries(fs.readFileSync(path.join(outDir, 'index.yaml'), 'utf8'));
    reporter.result(
      `Indexed ${displayPath(outDir)} for ${url}: ${entries.length} entr${entries.length === 1 ? 'y' : 'ies'} (${existing.length} kept from the published index).\n${table(
        ['chart', 'version', 'digest'],
        entries.map((e) => [e.name, e.version, e.digest ?? '']),
      )}`,
      { ok: true, url, entries, kept: existing.length, files: artifactSummary(plan.outputs), plan: planJson(plan) },
    );
    return 0;
  });
}

async function publishVerb(c: VerbContext): Promise<number> {
  const { flags, reporter, outDir } = c;
  only(flags, 'publish', ['to', 's3-endpoint', 's3-region', 's3-access-key-env', 's3-secret-key-env']);
  if (!flags.to) throw usageError('publish needs --to DIR', 'The directory served as the chart repository.');
  const s3 = /^s3:\/\//i.test(flags.to);
  if (!s3 && /^[a-z][a-z0-9+.-]*:\/\//i.test(flags.to)) throw usageError(`--to "${flags.to}": use a directory or s3://bucket/prefix`);
  // openStorage validates the bucket name; the client is created (and credentials read) on first use.
  const storage = s3
    ? openStorage(flags.to, { endpoint: flags['s3-endpoint'], region: flags['s3-region'], accessKeyEnv: flags['s3-access-key-env'], secretKeyEnv: flags['s3-secret-key-env'] })
    : undefined;
  if (!fs.existsSync(outDir)) throw new UserError(`${displayPath(outDir)} does not exist`, { hint: 'Run package and index first.' });
  const to = s3 ? flags.to : path.resolve(flags.to);
  if (to === outDir) throw usageError('--to must differ from --out');
  const plan = planPublish({ dir: outDir, to, names: fs.readdirSync(outDir), helm: c.planner });
  if (c.dryRun) {
    printDryRun(c, plan);
    return 0;
  }
  const remote = storage ? { get: (k: string) => storage.get(k), put: (k: string, d: Buffer) => storage.put(k, d) } : undefined;
  const outcomes = await reporter.step(`publish ${plan.steps.length} file(s) to ${storage?.display ?? to}`, (progress) => executePlan(plan, { gpgPath: '', progress, remote }));
  const rows = outcomes.map((o) => ({ file: path.basename((o.step as { to: string }).to), state: o.skipped ? 'unchanged' : 'written', sha256: sha256File((o.step as { from: string }).from) }));
  reporter.result(
    `Published to ${to}:\n${table(
      ['file', 'state', 'sha256'],
      rows.map((r) => [r.file, r.state, r.sha256]),
    )}`,
    { ok: true, to, files: rows, plan: planJson(plan) },
  );
  return 0;
}

async function pushOciVerb(c: VerbContext): Promise<number> {
  const { flags, reporter } = c;
  only(flags, 'push-oci', ['registry', 'plain-http', 'package']);
  if (!flags.registry) throw usageError('push-oci needs --registry oci://HOST/PATH');
  const registry = flags.registry;
  validateOciRegistry(registry);
  const meta = readChartMeta(c.chartDir);
  const pkg = path.resolve(flags.package ?? path.join(c.outDir, packageFileName(meta)));
  if (!fs.existsSync(pkg)) throw new UserError(`${displayPath(pkg)} does not exist`, { hint: 'Run `release.ts package` first, or pass --package FILE.' });
  const pkgMeta = localPackages(path.dirname(pkg)).find((p) => p.file === pkg) ?? { name: meta.name, version: meta.version };
  const plan = planPushOci({ pkg, registry, plainHttp: flags['plain-http'], helm: c.planner, meta: pkgMeta });
  if (c.dryRun) {
    printDryRun(c, plan);
    return 0;
  }
  const helm = await reporter.step(`helm ${c.major}`, () => helmClient(c.major));
  const [outcome] = await reporter.step(`push ${path.basename(pkg)} to ${registry}`, (progress) => executePlan(plan, { helm, gpgPath: '', progress }));
  const output = `${outcome.result?.stdout ?? ''}\n${outcome.result?.stderr ?? ''}`;
  const digest = parsePushDigest(output);
  if (!digest) throw new UserError(`helm push printed no digest:\n${output.trim()}`);
  const ref = plan.outputs[0];
  reporter.result(`Pushed ${ref}\nDigest: ${digest}\nInstall: helm install conduit ${ref.replace(/:[^:/]+$/, '')} --version ${pkgMeta.version}`, {
    ok: true,
    reference: ref,
    digest,
    provenance: fs.existsSync(pkg + '.prov'),
    package: { file: pkg, sha256: sha256File(pkg) },
    plan: planJson(plan),
  });
  return 0;
}

const VERBS: Record<string, (c: VerbContext) => Promise<number>> = {
  check: checkVerb,
  package: packageVerb,
  index: indexVerb,
  publish: publishVerb,
  'push-oci': pushOciVerb,
};

await runCommand(spec, async ({ flags, positionals, reporter }) => {
  const [verb, ...rest] = positionals;
  if (rest.length) throw usageError(`unexpected arguments: ${rest.join(' ')}`, 'See --help.');
  const major: HelmMajor = helmMajor(flags.helm);
  const chartDir = path.resolve(flags.chart ?? path.join(import.meta.dirname, '..', 'chart'));
  const outDir = path.resolve(flags.out ?? DEFAULT_OUT_DIR);
  const run = verb !== undefined && Object.hasOwn(VERBS, verb) ? VERBS[verb] : undefined;
  if (!run) throw usageError(verb ? `unknown verb "${verb}"` : 'a verb is required', 'Use: release.ts check | package | index | publish | push-oci  (see --help)');
  return run({ flags, reporter, major, planner: new Helm('helm', major), chartDir, outDir, dryRun: flags['dry-run'] });
});
