// Releasing the chart: the pre-release checks, packaging (optionally GPG-signed), the classic HTTP
// repository index, publishing to a directory or bucket, and pushing to an OCI registry.
// Every verb first builds a plan (data: the argv arrays it will run and the files it will write),
// which --dry-run prints and tests assert on; executing a plan is a separate step.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml, parseAllDocuments, parseDocument, stringify } from 'yaml';
import { syncChartFiles } from '../domain/chartfiles.ts';
import { toolError, UserError, usageError } from '../core/errors.ts';
import { formatArgv, run, type RunResult } from '../core/exec.ts';
import type { Helm, HelmMajor } from '../adapters/helm.ts';
import { CHART_DIR, displayPath, REPO_ROOT } from '../core/paths.ts';
import { MOVING_TAGS } from '../adapters/registry.ts';
import semver from 'semver';

export const TAG_PREFIX = 'conduit-chart-';
export const CHANGELOG_FILE = 'CHANGELOG.md';
export const UPGRADING_DOC = path.join(REPO_ROOT, 'docs', 'upgrading.md');
/** Default working directory of package/index/publish (ignored by git). */
export const DEFAULT_OUT_DIR = path.join(REPO_ROOT, 'out', 'chart-repo');
/** Public key files written next to a signed package, for `helm verify --keyring` and Artifact Hub. */
export const PUBLIC_KEYRING = 'pubkey.gpg';
export const PUBLIC_KEY_ARMORED = 'pubkey.asc';
export const ARTIFACTHUB_REPO_FILE = 'artifacthub-repo.yml';

// ---------------------------------------------------------------------------------------------
// Chart metadata

export interface ChartMeta {
  dir: string;
  name: string;
  version: string;
  appVersion: string;
  annotations: Record<string, string>;
}

export function readChartMeta(chartDir: string = CHART_DIR): ChartMeta {
  const file = path.join(chartDir, 'Chart.yaml');
  if (!fs.existsSync(file)) throw new UserError(`no Chart.yaml in ${displayPath(chartDir)}`, { hint: 'Point --chart at a chart directory.', exitCode: 2 });
  const doc = parseYaml(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  const name = String(doc.name ?? '');
  const version = String(doc.version ?? '');
  if (!name || !parseSemver(version)) {
    throw new UserError(`${displayPath(file)}: name and a SemVer version are required (got name "${name}", version "${version}")`, { hint: 'Set `version: X.Y.Z` in Chart.yaml.' });
  }
  const annotations = (doc.annotations ?? {}) as Record<string, string>;
  return { dir: chartDir, name, version, appVersion: String(doc.appVersion ?? ''), annotations };
}

export function packageFileName(meta: Pick<ChartMeta, 'name' | 'version'>): string {
  return `${meta.name}-${meta.version}.tgz`;
}

export function releaseTag(version: string): string {
  return `${TAG_PREFIX}${version}`;
}

// ---------------------------------------------------------------------------------------------
// SemVer, as Helm reads chart versions (the `semver` package; a leading `v` is accepted).

export function parseSemver(v: string): semver.SemVer | undefined {
  return semver.parse(v.trim().replace(/^v/, '')) ?? undefined;
}

export function compareSemver(a: string, b: string): number {
  const x = parseSemver(a);
  const y = parseSemver(b);
  if (!x || !y) throw new Error(`not SemVer: ${!x ? a : b}`);
  return semver.compare(x, y);
}

/** The highest `conduit-chart-X.Y.Z` tag, or undefined when the chart was never released. */
export function latestReleaseTag(tags: readonly string[]): { tag: string; version: string } | undefined {
  const released = tags
    .filter((t) => t.startsWith(TAG_PREFIX) && parseSemver(t.slice(TAG_PREFIX.length)))
    .map((tag) => ({ tag, version: tag.slice(TAG_PREFIX.length) }))
    .sort((a, b) => compareSemver(a.version, b.version));
  return released.at(-1);
}

// ---------------------------------------------------------------------------------------------
// Check results

export type CheckStatus = 'ok' | 'failed' | 'skipped';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  message: string;
  hint?: string;
  details?: unknown;
}

/**
 * Was the version bumped when the chart changed? `changed` lists the shipped files that differ
 * from the last release tag (committed or not).
 */
export function evaluateVersionBump(input: { version: string; tags: readonly string[]; changed: readonly string[] }): CheckResult {
  const name = 'version bump';
  const last = latestReleaseTag(input.tags);
  if (!last) {
    return { name, status: 'ok', message: `first release: no ${TAG_PREFIX}* tag exists yet, ${input.version} will be the first`, details: { first: true, version: input.version } };
  }
  const cmp = compareSemver(input.version, last.version);
  const details = { first: false, version: input.version, lastTag: last.tag, changed: input.changed };
  if (cmp < 0) {
    return {
      name,
      status: 'failed',
      message: `Chart.yaml version ${input.version} is lower than the last release ${last.version} (${last.tag})`,
      hint: `Set a version above ${last.version} in chart/Chart.yaml.`,
      details,
    };
  }
  if (cmp === 0) {
    if (input.changed.length === 0) return { name, status: 'ok', message: `${input.version} is released as ${last.tag} and nothing shipped changed since`, details };
    const list = input.changed.slice(0, 8).join(', ') + (input.changed.length > 8 ? `, and ${input.changed.length - 8} more` : '');
    return {
      name,
      status: 'failed',
      message: `${input.changed.length} shipped file(s) changed since ${last.tag} but Chart.yaml still says version ${input.version}: ${list}`,
      hint: `Bump version in chart/Chart.yaml (patch for fixes, minor for features, major for breaking changes) and add a CHANGELOG entry.`,
      details,
    };
  }
  return { name, status: 'ok', message: `${input.version} follows ${last.tag} (${input.changed.length} shipped file(s) changed since)`, details };
}

// ---------------------------------------------------------------------------------------------
// CHANGELOG and artifacthub.io/changes

export const CHANGE_KINDS = ['added', 'changed', 'deprecated', 'removed', 'fixed', 'security'] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

export interface ChangeEntry {
  kind: ChangeKind;
  description: string;
}

export interface ChangelogVersion {
  version: string;
  date?: string;
  changes: ChangeEntry[];
  /** 1-based line of the `## X.Y.Z` heading. */
  line: number;
}

/**
 * Parse a changelog written as `## X.Y.Z - YYYY-MM-DD`, then `### Added|Changed|Deprecated|Removed|Fixed|Security`
 * sections holding `- ` bullets (continuation lines indented). Anything else is prose and ignored.
 */
export function parseChangelog(text: string, file = CHANGELOG_FILE): ChangelogVersion[] {
  const versions: ChangelogVersion[] = [];
  let current: ChangelogVersion | undefined;
  let kind: ChangeKind | undefined;
  let last: ChangeEntry | undefined;
  const lines = text.split(/\r?\n/);
  lines.forEach((line, i) => {
    const h2 = /^##\s+\[?([^\]\s]+)\]?(?:\s+[-–]\s+(\S+))?\s*$/.exec(line);
    if (h2) {
      if (!parseSemver(h2[1])) throw new UserError(`${file}:${i + 1}: "${line}" is not a version heading (## X.Y.Z - YYYY-MM-DD)`, { hint: 'Use SemVer versions in changelog headings.' });
      current = { version: h2[1], date: h2[2], changes: [], line: i + 1 };
      versions.push(current);
      kind = undefined;
      last = undefined;
      return;
    }
    const h3 = /^###\s+(.+?)\s*$/.exec(line);
    if (h3 && current) {
      const k = h3[1].toLowerCase() as ChangeKind;
      if (!CHANGE_KINDS.includes(k)) {
        throw new UserError(`${file}:${i + 1}: unknown change section "${h3[1]}"`, { hint: `Use one of: ${CHANGE_KINDS.map((c) => c[0].toUpperCase() + c.slice(1)).join(', ')}.` });
      }
      kind = k;
      last = undefined;
      return;
    }
    if (/^#\s/.test(line)) {
      kind = undefined;
      last = undefined;
      return;
    }
    const bullet = /^[-*]\s+(.*)$/.exec(line);
    if (bullet && current && kind) {
      last = { kind, description: bullet[1].trim() };
      current.changes.push(last);
      return;
    }
    if (last && /^\s+\S/.test(line)) {
      last.description = `${last.description} ${line.trim()}`;
      return;
    }
    if (!line.trim()) last = undefined;
  });
  return versions;
}

/** The entries of artifacthub.io/changes (a YAML list of {kind, description}, or of plain strings). */
/** A Chart.yaml annotation that holds YAML, parsed; invalid YAML is the operator's to fix. */
function parseAnnotationYaml(key: string, text: string): unknown {
  try {
    return parseYaml(text);
  } catch (e) {
    throw new UserError(`Chart.yaml: annotation ${key} is not valid YAML: ${(e as Error).message.split('\n')[0]}`, { hint: 'Quote descriptions that contain ": " or start with a special character.' });
  }
}

export function parseArtifactHubChanges(annotation: string | undefined): ChangeEntry[] {
  if (!annotation) return [];
  const list = parseAnnotationYaml('artifacthub.io/changes', annotation);
  if (!Array.isArray(list)) throw new UserError('Chart.yaml: annotation artifacthub.io/changes is not a YAML list', { hint: 'Write it as a list of {kind, description} entries.' });
  return list.map((e) => (typeof e === 'string' ? { kind: 'changed' as ChangeKind, description: e } : { kind: String(e.kind) as ChangeKind, description: String(e.description ?? '') }));
}

/** The artifacthub.io/changes annotation text for a changelog entry. */
export function renderArtifactHubChanges(changes: readonly ChangeEntry[]): string {
  return stringify(
    changes.map((c) => ({ kind: c.kind, description: c.description })),
    { lineWidth: 0 },
  );
}

/** Markdown inline syntax does not belong in Artifact Hub's plain-text change list. */
export function plainText(markdown: string): string {
  return markdown
    .replace(/`([^`]*)`/g, '$1')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/\*\*([^*]*)\*\*/g, '$1')
    .trim();
}

export function evaluateChangelog(input: { version: string; changelog?: string; changelogFile: string }): { result: CheckResult; entry?: ChangelogVersion } {
  const name = 'changelog entry';
  if (input.changelog === undefined) {
    return { result: { name, status: 'failed', message: `${input.changelogFile} does not exist`, hint: `Create it with a "## ${input.version} - YYYY-MM-DD" section.` } };
  }
  let versions: ChangelogVersion[];
  try {
    versions = parseChangelog(input.changelog, input.changelogFile);
  } catch (e) {
    if (e instanceof UserError) return { result: { name, status: 'failed', message: e.message, hint: e.hint } };
    throw e;
  }
  const entry = versions.find((v) => v.version === input.version);
  if (!entry) {
    return {
      result: {
        name,
        status: 'failed',
        message: `${input.changelogFile} has no section for ${input.version}`,
        hint: `Add "## ${input.version} - ${new Date().toISOString().slice(0, 10)}" with ### Added/Changed/Fixed/... bullets above the older versions.`,
      },
    };
  }
  if (!entry.changes.length) {
    return {
      entry,
      result: {
        name,
        status: 'failed',
        message: `${input.changelogFile}:${entry.line}: the ${input.version} section lists no changes`,
        hint: 'Add at least one bullet under ### Added, Changed, Deprecated, Removed, Fixed or Security.',
      },
    };
  }
  if (versions[0].version !== input.version) {
    return { entry, result: { name, status: 'failed', message: `${input.changelogFile}: the newest section is ${versions[0].version}, not ${input.version}`, hint: 'Keep the newest version first.' } };
  }
  return { entry, result: { name, status: 'ok', message: `${input.changelogFile}:${entry.line}: ${entry.changes.length} change(s) for ${input.version}${entry.date ? ` (${entry.date})` : ''}` } };
}

export function evaluateArtifactHubChanges(input: { entry?: ChangelogVersion; annotation?: string }): CheckResult {
  const name = 'artifacthub.io/changes';
  if (!input.entry) return { name, status: 'skipped', message: 'no changelog entry to compare with' };
  const wanted = input.entry.changes.map((c) => ({ kind: c.kind, description: plainText(c.description) }));
  const hint = `Set in chart/Chart.yaml:\n  artifacthub.io/changes: |\n${renderArtifactHubChanges(wanted)
    .trimEnd()
    .split('\n')
    .map((l) => '    ' + l)
    .join('\n')}`;
  let actual: ChangeEntry[];
  try {
    actual = parseArtifactHubChanges(input.annotation);
  } catch (e) {
    if (e instanceof UserError) return { name, status: 'failed', message: e.message, hint };
    throw e;
  }
  if (!actual.length) return { name, status: 'failed', message: 'Chart.yaml has no artifacthub.io/changes annotation', hint };
  const key = (c: ChangeEntry) => `${c.kind}: ${c.description.replace(/\s+/g, ' ').trim()}`;
  const missing = wanted.map(key).filter((k) => !actual.map(key).includes(k));
  const extra = actual.map(key).filter((k) => !wanted.map(key).includes(k));
  if (missing.length || extra.length || wanted.map(key).join('\n') !== actual.map(key).join('\n')) {
    const parts = [
      missing.length ? `missing: ${missing.join(' | ')}` : '',
      extra.length ? `not in the changelog: ${extra.join(' | ')}` : '',
      !missing.length && !extra.length ? 'same entries in another order' : '',
    ].filter(Boolean);
    return { name, status: 'failed', message: `artifacthub.io/changes differs from the CHANGELOG ${input.entry.version} entry (${parts.join('; ')})`, hint, details: { missing, extra } };
  }
  return { name, status: 'ok', message: `matches the CHANGELOG (${actual.length} entries)` };
}

// ---------------------------------------------------------------------------------------------
// Images: values.yaml defaults, appVersion and artifacthub.io/images

/** The components whose image tag defaults to the chart's appVersion (released together). */
export const APP_IMAGE_PATHS = ['api.image', 'admin.image', 'webui.image'] as const;

export interface DefaultImage {
  /** Values path of the image setting, e.g. api.image or database.cnpg.imageName. */
  path: string;
  /** The full reference the chart renders by default. */
  image: string;
  app: boolean;
  tag?: string;
  digest?: string;
}

/** Every image a default install can run, read from the values (objects with repository/tag/digest, and `imageName`/`image` strings). */
export function defaultImages(values: unknown, appVersion: string): DefaultImage[] {
  const out: DefaultImage[] = [];
  const walk = (node: unknown, at: string[]) => {
    if (!node || typeof node !== 'object' || Array.isArray(node)) return;
    const o = node as Record<string, unknown>;
    if (typeof o.repository === 'string' && ('tag' in o || 'digest' in o)) {
      const p = at.join('.');
      const ref = o.registry ? `${o.registry}/${o.repository}` : o.repository;
      const tag = o.tag === undefined || o.tag === null ? '' : String(o.tag);
      const digest = o.digest ? String(o.digest) : '';
      out.push({ path: p, app: (APP_IMAGE_PATHS as readonly string[]).includes(p), tag, digest: digest || undefined, image: digest ? `${ref}@${digest}` : `${ref}:${tag || appVersion}` });
      return;
    }
    for (const [k, v] of Object.entries(o)) {
      // Image references given as one string: CloudNativePG's imageName, the RabbitmqCluster's image.
      if ((k === 'imageName' || k === 'image') && typeof v === 'string' && v) {
        const m = /^(.*?)(?::([^:/@]+))?(?:@(sha256:[a-f0-9]{64}))?$/.exec(v)!;
        out.push({ path: [...at, k].join('.'), app: false, image: v, tag: m[2], digest: m[3] });
      } else walk(v, [...at, k]);
    }
  };
  walk(values, []);
  return out;
}

export function parseArtifactHubImages(annotation: string | undefined): { name: string; image: string }[] {
  if (!annotation) return [];
  const list = parseAnnotationYaml('artifacthub.io/images', annotation);
  if (!Array.isArray(list)) throw new UserError('Chart.yaml: annotation artifacthub.io/images is not a YAML list', { hint: 'Write it as a list of {name, image} entries.' });
  return list.map((e) => ({ name: String(e?.name ?? ''), image: String(e?.image ?? '') }));
}

/** Images of containers (and CloudNativePG imageName) in rendered manifests. */
export function renderedImages(manifests: string): string[] {
  const found = new Set<string>();
  const walk = (node: unknown, key?: string) => {
    if (Array.isArray(node)) return node.forEach((n) => walk(n, key));
    if (!node || typeof node !== 'object') return;
    for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
      if ((k === 'image' || k === 'imageName') && typeof v === 'string' && v && ['containers', 'initContainers', 'spec'].includes(key ?? '')) found.add(v);
      else walk(v, k);
    }
  };
  for (const doc of parseAllDocuments(manifests)) walk(doc.toJS());
  return [...found].sort();
}

export function evaluateImages(input: { meta: ChartMeta; values: unknown; rendered?: string[] }): CheckResult {
  const name = 'images';
  const { meta } = input;
  const problems: string[] = [];
  const images = defaultImages(input.values, meta.appVersion);
  for (const app of APP_IMAGE_PATHS) if (!images.some((i) => i.path === app)) problems.push(`values.yaml has no ${app} (repository/tag/digest)`);
  for (const img of images) {
    if (img.app && !img.digest && img.tag && img.tag !== meta.appVersion)
      problems.push(`${img.path}.tag is "${img.tag}" but appVersion is "${meta.appVersion}" (leave it empty, set it to appVersion, or pin a digest)`);
    // The tag a default install pulls: the app images fall back to appVersion. `latest` and `master` move.
    const pulled = img.tag || (img.app ? meta.appVersion : '');
    if (!img.digest && (!pulled || MOVING_TAGS.includes(pulled))) problems.push(`${img.path} is not pinned (tag "${pulled}"): use a fixed tag (e.g. master-<7-char sha>) or a digest`);
  }
  let annotated: { name: string; image: string }[] = [];
  try {
    annotated = parseArtifactHubImages(meta.annotations['artifacthub.io/images']);
  } catch (e) {
    if (e instanceof UserError) problems.push(e.message);
    else throw e;
  }
  if (!annotated.length) problems.push('Chart.yaml has no artifacthub.io/images annotation');
  const want = new Set(images.map((i) => i.image));
  const have = new Set(annotated.map((i) => i.image));
  for (const i of images) if (!have.has(i.image)) problems.push(`artifacthub.io/images lacks ${i.image} (${i.path})`);
  for (const a of annotated) if (!want.has(a.image)) problems.push(`artifacthub.io/images lists ${a.image} (${a.name}), which is no default image of values.yaml`);
  for (const r of input.rendered ?? []) if (!have.has(r)) problems.push(`the default render runs ${r}, which artifacthub.io/images does not list`);
  const details = { appVersion: meta.appVersion, images: images.map((i) => ({ path: i.path, image: i.image })), annotated, rendered: input.rendered };
  if (problems.length) {
    const annotation = stringify(
      images.map((i) => ({ name: i.path.replace(/\.(image|imageName)$/, '').replace(/\./g, '-'), image: i.image })),
      { lineWidth: 0 },
    );
    return { name, status: 'failed', message: problems.join('; '), hint: `artifacthub.io/images should list exactly the default images:\n${annotation.trimEnd()}`, details };
  }
  return {
    name,
    status: 'ok',
    message: `${images.length} default images pinned, app images at appVersion ${meta.appVersion}, artifacthub.io/images matches${input.rendered ? ` (and the ${input.rendered.length} rendered ones)` : ''}`,
    details,
  };
}

// ---------------------------------------------------------------------------------------------
// Upgrade notes

export function evaluateUpgradeNotes(input: { version: string; text?: string; file: string }): CheckResult {
  const name = 'upgrade notes';
  if (input.text === undefined) return { name, status: 'failed', message: `${input.file} does not exist`, hint: `Write it with a "## ${input.version}" section.` };
  const has = input.text.split('\n').some((l) => new RegExp(`^##\\s+(?:To\\s+)?\\[?${input.version.replace(/\./g, '\\.')}\\b`).test(l));
  return has
    ? { name, status: 'ok', message: `${input.file} has a section for ${input.version}` }
    : { name, status: 'failed', message: `${input.file} has no "## ${input.version}" section`, hint: 'Say what operators must do when upgrading to this version (or that nothing is needed).' };
}

// ---------------------------------------------------------------------------------------------
// Plans

/** One thing a verb does: run a program, or touch a file. Secrets are never part of a plan. */
export type PlanStep =
  | { kind: 'run'; tool: 'helm' | 'gpg'; args: string[]; why: string; produces?: string; env?: Record<string, string> }
  /** Write the passphrase (known only at execution) to a file readable by the owner alone. */
  | { kind: 'write-passphrase'; file: string; why: string }
  | { kind: 'stage-chart'; from: string; to: string; setAnnotations: Record<string, string>; why: string }
  | { kind: 'write'; file: string; content: string; why: string; onlyIfMissing?: boolean }
  | { kind: 'copy'; from: string; to: string; why: string; immutable: boolean }
  | { kind: 'remove'; path: string; why: string };

export interface Plan {
  verb: string;
  helm: HelmMajor;
  steps: PlanStep[];
  /** Files the plan produces (for the summary). */
  outputs: string[];
}

export function describeStep(s: PlanStep): string {
  switch (s.kind) {
    case 'run':
      return `${formatArgv(s.tool, s.args)}   # ${s.why}`;
    case 'write-passphrase':
      return `write the passphrase to ${displayPath(s.file)} (mode 0600)   # ${s.why}`;
    case 'stage-chart':
      return `stage ${displayPath(s.from)} -> ${displayPath(s.to)} setting ${Object.keys(s.setAnnotations).join(', ')}   # ${s.why}`;
    case 'write':
      return `write ${displayPath(s.file)}${s.onlyIfMissing ? ' (unless present)' : ''}   # ${s.why}`;
    case 'copy':
      return `copy ${displayPath(s.from)} -> ${s.to}   # ${s.why}`;
    case 'remove':
      return `remove ${displayPath(s.path)}   # ${s.why}`;
  }
}

// --- package -----------------------------------------------------------------------------------

export interface SigningInput {
  /** Key name (user id or fingerprint) as helm --key expects it. */
  key: string;
  /** Legacy secret keyring (secring.gpg); when absent the key is exported from GNUPGHOME. */
  keyring?: string;
  /** Fingerprint of the signing key when known (from gpg), for the signKey annotation. */
  fingerprint?: string;
  /** Public URL of the armored public key, for artifacthub.io/signKey. */
  keyUrl?: string;
  /** A passphrase is available (env or file); its value never enters the plan. */
  hasPassphrase: boolean;
  /** The operator's passphrase file; when absent but hasPassphrase, the passphrase (from the env) is written to a 0600 file in workDir for this run. */
  passphraseFile?: string;
}

export interface PackageInput {
  meta: ChartMeta;
  /** Builds the helm argv (the plan records its major). */
  helm: Helm;
  outDir: string;
  /** Scratch directory for the exported keyring and a staged chart copy. */
  workDir: string;
  sign?: SigningInput;
  /** File times inside the archive (Unix seconds; helm 4 honours SOURCE_DATE_EPOCH): the same commit gives the same package bytes. */
  sourceDateEpoch?: number;
}

export function planPackage(input: PackageInput): Plan {
  const { meta, outDir, workDir, sign } = input;
  const steps: PlanStep[] = [];
  const pkg = path.join(outDir, packageFileName(meta));
  const outputs = [pkg];
  let chartDir = meta.dir;
  if (sign) {
    const annotations: Record<string, string> = {};
    if (sign.keyUrl && sign.fingerprint) annotations['artifacthub.io/signKey'] = `fingerprint: ${sign.fingerprint}\nurl: ${sign.keyUrl}\n`;
    if (Object.keys(annotations).length) {
      chartDir = path.join(workDir, meta.name);
      steps.push({ kind: 'stage-chart', from: meta.dir, to: chartDir, setAnnotations: annotations, why: 'Artifact Hub shows the chart as signed with this key' });
    }
  }
  // Helm reads the passphrase from a file (its stdin mode wants a FIFO); never from argv.
  let passFile = sign?.passphraseFile;
  const cleanup: string[] = [];
  if (sign?.hasPassphrase && !passFile) {
    passFile = path.join(workDir, 'passphrase');
    steps.push({ kind: 'write-passphrase', file: passFile, why: 'handed to gpg and helm as a file, never on a command line' });
    cleanup.push(passFile);
  }
  let keyring = sign?.keyring;
  if (sign && !keyring) {
    keyring = path.join(workDir, 'secring.gpg');
    cleanup.push(keyring);
    // Helm reads only the legacy keyring format; GnuPG >= 2.1 keeps keys elsewhere, so export one.
    const pass = passFile ? ['--pinentry-mode', 'loopback', '--passphrase-file', passFile] : [];
    steps.push({ kind: 'run', tool: 'gpg', args: ['--batch', '--yes', ...pass, '--output', keyring, '--export-secret-keys', sign.key], produces: keyring, why: 'helm needs a legacy secret keyring' });
  }
  const pubring = path.join(outDir, PUBLIC_KEYRING);
  if (sign && !sign.keyring) {
    const armored = path.join(outDir, PUBLIC_KEY_ARMORED);
    steps.push({ kind: 'run', tool: 'gpg', args: ['--batch', '--yes', '--output', pubring, '--export', sign.key], produces: pubring, why: 'public keyring for helm verify --keyring' });
    steps.push({
      kind: 'run',
      tool: 'gpg',
      args: ['--batch', '--yes', '--armor', '--output', armored, '--export', sign.key],
      produces: armored,
      why: 'armored public key (artifacthub.io/signKey url)',
    });
    outputs.push(pubring, path.join(outDir, PUBLIC_KEY_ARMORED));
  }
  const args = input.helm.packageArgs({ chart: chartDir, destination: outDir, sign: sign ? { key: sign.key, keyring: keyring!, passphraseFile: passFile } : undefined });
  if (sign) outputs.push(pkg + '.prov');
  const env = input.sourceDateEpoch !== undefined ? { SOURCE_DATE_EPOCH: String(input.sourceDateEpoch) } : undefined;
  steps.push({ kind: 'run', tool: 'helm', args, ...(env ? { env } : {}), why: sign ? 'package and sign (.prov)' : 'package' });
  if (sign && !sign.keyring) steps.push({ kind: 'run', tool: 'helm', args: input.helm.verifyArgs(pkg, pubring), why: 'prove the provenance verifies with the published key' });
  for (const f of cleanup) steps.push({ kind: 'remove', path: f, why: 'secret material must not outlive the run' });
  return { verb: 'package', helm: input.helm.major, steps, outputs };
}

// --- index -------------------------------------------------------------------------------------

export interface IndexInput {
  dir: string;
  url: string;
  helm: Helm;
  /** Existing index file (a URL is fetched into a file before planning, see fetchExistingIndex). */
  merge?: string;
  artifactHub?: { repositoryId?: string; owners?: { name: string; email: string }[] };
}

export function validateRepoUrl(url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw usageError(`--url "${url}" is not a URL`, 'Give the public base URL of the chart repository, e.g. https://charts.example.com/conduit.');
  }
  if (!['http:', 'https:'].includes(u.protocol)) throw usageError(`--url must be http(s), not ${u.protocol}`, 'OCI registries are published with push-oci, not index.');
  if (u.username || u.password) throw usageError('--url must not contain credentials', 'The URL ends up in index.yaml, which is public.');
}

export function artifactHubRepoFile(input: IndexInput['artifactHub'] = {}): string {
  const lines = ['# Artifact Hub repository metadata: served next to index.yaml.', '# Fill in repositoryID (shown when the repository is added on Artifact Hub) to get the verified-publisher badge.'];
  const doc: Record<string, unknown> = {};
  if (input.repositoryId) doc.repositoryID = input.repositoryId;
  if (input.owners?.length) doc.owners = input.owners;
  return lines.join('\n') + '\n' + (Object.keys(doc).length ? stringify(doc) : '{}\n');
}

export function planIndex(input: IndexInput): Plan {
  validateRepoUrl(input.url);
  const steps: PlanStep[] = [];
  const args = input.helm.repoIndexArgs({ dir: input.dir, url: input.url, merge: input.merge });
  steps.push({ kind: 'run', tool: 'helm', args, why: 'index the packages, keeping the entries of the existing index' });
  const ah = path.join(input.dir, ARTIFACTHUB_REPO_FILE);
  steps.push({
    kind: 'write',
    file: ah,
    content: artifactHubRepoFile(input.artifactHub),
    onlyIfMissing: !input.artifactHub?.repositoryId && !input.artifactHub?.owners?.length,
    why: 'Artifact Hub repository metadata',
  });
  return { verb: 'index', helm: input.helm.major, steps, outputs: [path.join(input.dir, 'index.yaml'), ah] };
}

/** --merge: a local file as is, or an http(s) URL downloaded into workDir (undefined: nothing published yet). */
export async function fetchExistingIndex(merge: string, workDir: string): Promise<string | undefined> {
  if (!/^https?:\/\//.test(merge)) {
    if (!fs.existsSync(merge)) throw new UserError(`--merge ${merge} does not exist`, { hint: 'Give the published index.yaml (a file or its http(s) URL).' });
    return merge;
  }
  let res: Response;
  try {
    res = await fetch(merge);
  } catch (e) {
    throw new UserError(`GET ${merge}: ${(e as Error).message}`, { hint: 'Check --merge (the URL of the published index.yaml).' });
  }
  if (res.status === 404) return undefined;
  if (!res.ok) throw new UserError(`GET ${merge}: HTTP ${res.status}`, { hint: 'Check --merge (the URL of the published index.yaml).' });
  const file = path.join(workDir, 'published-index.yaml');
  atomicWrite(file, Buffer.from(await res.arrayBuffer()));
  return file;
}

/** Name, version and sha256 of every package in a repository directory. */
export function localPackages(dir: string): { file: string; name: string; version: string; digest: string }[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((n) => n.endsWith('.tgz'))
    .sort()
    .flatMap((n) => {
      const m = /^(.+?)-(\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]*)?)\.tgz$/.exec(n);
      return m ? [{ file: path.join(dir, n), name: m[1], version: m[2], digest: sha256File(path.join(dir, n)) }] : [];
    });
}

export interface IndexEntry {
  name: string;
  version: string;
  digest?: string;
  urls: string[];
}

export function readIndexEntries(text: string): IndexEntry[] {
  const doc = parseYaml(text) as { entries?: Record<string, { version: string; digest?: string; urls?: string[] }[]> } | null;
  return Object.entries(doc?.entries ?? {}).flatMap(([name, list]) => (list ?? []).map((e) => ({ name, version: String(e.version), digest: e.digest, urls: e.urls ?? [] })));
}

/** Released versions are immutable: a package whose name and version are in the existing index must have the same digest. */
export function conflictingEntries(existing: readonly IndexEntry[], packages: readonly { name: string; version: string; digest: string }[]): string[] {
  return packages.flatMap((p) => {
    const e = existing.find((x) => x.name === p.name && x.version === p.version);
    return e && e.digest && e.digest !== p.digest ? [`${p.name} ${p.version}: published digest ${e.digest}, local package ${p.digest}`] : [];
  });
}

// --- publish -----------------------------------------------------------------------------------

/** The files of a repository directory that publish copies, index.yaml LAST (readers follow the index). */
export function publishableFiles(names: readonly string[]): string[] {
  const isArtifact = (n: string) => /\.tgz(\.prov)?$/.test(n) || [PUBLIC_KEYRING, PUBLIC_KEY_ARMORED, ARTIFACTHUB_REPO_FILE].includes(n);
  const files = names.filter(isArtifact).sort((a, b) => a.localeCompare(b));
  if (!names.includes('index.yaml')) throw new UserError('no index.yaml to publish', { hint: 'Run `release.ts index --url URL` first.' });
  return [...files, 'index.yaml'];
}

export function planPublish(input: { dir: string; to: string; names: readonly string[]; helm: Helm }): Plan {
  const files = publishableFiles(input.names);
  const steps: PlanStep[] = files.map((n) => ({
    kind: 'copy',
    from: path.join(input.dir, n),
    to: joinDestination(input.to, n),
    // A package never changes once published. Its .prov may be re-signed (same package hash, new
    // signature time) when a release run is repeated; it is copied after its package, so a changed
    // package stops the run before its provenance is touched.
    immutable: /\.tgz$/.test(n),
    why: n === 'index.yaml' ? 'last: the index only names files that are already there' : /\.tgz$/.test(n) ? 'chart package' : /\.prov$/.test(n) ? 'provenance' : 'repository file',
  }));
  return { verb: 'publish', helm: input.helm.major, steps, outputs: steps.map((s) => (s as { to: string }).to) };
}

export function joinDestination(to: string, name: string): string {
  return /^s3:\/\//i.test(to) ? `${to.replace(/\/+$/, '')}/${name}` : path.join(to, name);
}

// --- push-oci ----------------------------------------------------------------------------------

export function validateOciRegistry(registry: string): string {
  const m = /^oci:\/\/([^/\s]+)(\/[^\s]*)?$/.exec(registry);
  if (!m) throw usageError(`--registry "${registry}" is not oci://HOST[/PATH]`, 'Example: --registry oci://ghcr.io/acme/charts');
  if (m[1].includes('@')) throw usageError('--registry must not contain credentials', 'Log in with `helm registry login` (password on stdin) instead.');
  return registry.replace(/\/+$/, '');
}

export function planPushOci(input: { pkg: string; registry: string; plainHttp: boolean; helm: Helm; meta: Pick<ChartMeta, 'name' | 'version'> }): Plan {
  const registry = validateOciRegistry(input.registry);
  const args = input.helm.pushArgs({ pkg: input.pkg, registry, plainHttp: input.plainHttp });
  const prov = fs.existsSync(input.pkg + '.prov');
  return {
    verb: 'push-oci',
    helm: input.helm.major,
    steps: [{ kind: 'run', tool: 'helm', args, why: prov ? 'push the chart and its provenance (.prov) as one OCI artifact' : 'push the chart as an OCI artifact' }],
    outputs: [`${registry}/${input.meta.name}:${input.meta.version}`],
  };
}

/** The manifest digest helm prints after a push ("Digest: sha256:..."). */
export function parsePushDigest(output: string): string | undefined {
  return /^Digest:\s*(sha256:[a-f0-9]{64})\s*$/m.exec(output)?.[1];
}

// ---------------------------------------------------------------------------------------------
// Executing plans

export interface ExecContext {
  /** Runs the plan's helm steps (plans without any, such as publish, need none). */
  helm?: Helm;
  gpgPath: string;
  passphrase?: string;
  progress?: (note: string) => void;
  /** Storage for copy steps whose destination is not a local path (s3://...). */
  remote?: RemoteStore;
}

/** What publish needs of a non-local destination. */
export interface RemoteStore {
  get(key: string): Promise<Buffer | undefined>;
  put(key: string, data: Buffer): Promise<void>;
}

export interface StepOutcome {
  step: PlanStep;
  result?: RunResult;
  skipped?: string;
}

export async function executePlan(plan: Plan, ctx: ExecContext): Promise<StepOutcome[]> {
  const outcomes: StepOutcome[] = [];
  for (const step of plan.steps) {
    ctx.progress?.(describeStep(step).split('   #')[0]);
    outcomes.push(await executeStep(step, ctx));
  }
  return outcomes;
}

function runTool(step: Extract<PlanStep, { kind: 'run' }>, ctx: ExecContext): Promise<RunResult> {
  const opts = { env: step.env, timeoutMs: 5 * 60_000 };
  if (step.tool === 'gpg') return run(ctx.gpgPath, step.args, opts);
  if (!ctx.helm) throw new Error(`plan step "${step.why}" runs helm, but no helm client was given`);
  return ctx.helm.run(step.args, opts);
}

async function executeStep(step: PlanStep, ctx: ExecContext): Promise<StepOutcome> {
  switch (step.kind) {
    case 'run': {
      if (step.produces) fs.mkdirSync(path.dirname(step.produces), { recursive: true });
      const r = await runTool(step, ctx);
      if (r.exitCode !== 0) {
        const tail = (r.stderr || r.stdout).trim().split('\n').slice(-10).join('\n');
        throw new UserError(`${r.command} exited ${r.exitCode}:\n${tail}`, { hint: step.tool === 'gpg' ? 'Check the key name (gpg --list-secret-keys) and GNUPGHOME.' : undefined });
      }
      // gpg exits 0 with "nothing exported" when the key is unknown.
      if (step.produces && !fs.statSync(step.produces, { throwIfNoEntry: false })?.size) {
        throw new UserError(`${r.command} wrote nothing to ${displayPath(step.produces)}`, { hint: 'Is the key in this GNUPGHOME? List keys with gpg --list-secret-keys.' });
      }
      return { step, result: r };
    }
    case 'stage-chart': {
      fs.rmSync(step.to, { recursive: true, force: true });
      fs.cpSync(step.from, step.to, { recursive: true });
      const file = path.join(step.to, 'Chart.yaml');
      const doc = parseDocument(fs.readFileSync(file, 'utf8'));
      for (const [k, v] of Object.entries(step.setAnnotations)) doc.setIn(['annotations', k], v);
      fs.writeFileSync(file, doc.toString({ lineWidth: 0 }));
      return { step };
    }
    case 'write-passphrase': {
      if (ctx.passphrase === undefined) throw new Error('plan needs a passphrase but none was given');
      fs.mkdirSync(path.dirname(step.file), { recursive: true, mode: 0o700 });
      fs.writeFileSync(step.file, ctx.passphrase, { mode: 0o600 });
      return { step };
    }
    case 'write': {
      if (step.onlyIfMissing && fs.existsSync(step.file)) return { step, skipped: 'already present' };
      atomicWrite(step.file, Buffer.from(step.content));
      return { step };
    }
    case 'copy':
      return copyStep(step, ctx);
    case 'remove':
      fs.rmSync(step.path, { force: true, recursive: true });
      return { step };
  }
}

async function copyStep(step: Extract<PlanStep, { kind: 'copy' }>, ctx: ExecContext): Promise<StepOutcome> {
  const data = fs.readFileSync(step.from);
  const remote = /^s3:\/\//i.test(step.to);
  let existing: Buffer | undefined;
  if (remote) {
    if (!ctx.remote) throw new Error('no remote store for ' + step.to);
    existing = await ctx.remote.get(path.basename(step.to));
  } else existing = fs.existsSync(step.to) ? fs.readFileSync(step.to) : undefined;
  if (existing && existing.equals(data)) return { step, skipped: 'identical file already published' };
  if (existing && step.immutable) {
    throw new UserError(`${step.to} is already published with different content`, { hint: 'A released chart version is immutable: bump the version in Chart.yaml instead of re-publishing it.' });
  }
  if (remote) await ctx.remote!.put(path.basename(step.to), data);
  else atomicWrite(step.to, data);
  return { step };
}

/** Write to a temporary name in the same directory, then rename: readers never see half a file. */
export function atomicWrite(file: string, data: Buffer): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  try {
    fs.writeFileSync(tmp, data);
    fs.renameSync(tmp, file);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

export function sha256File(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

export function makeWorkDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-release-'));
}

// ---------------------------------------------------------------------------------------------
// The release check: everything that must hold before a version is packaged and published

/** Paths (git pathspecs, repository-relative) whose change ships in the chart. */
export function shippedPathspecs(chartRel: string): string[] {
  // The chart itself, and the sources of what chart/files/ copies (dashboards and rule files).
  return [chartRel || '.', ':(glob)dashboards/*.json', ':(glob)alerts/*.rules.yaml'];
}

async function git(args: string[], cwd: string): Promise<string> {
  const r = await run('git', args, { cwd });
  if (r.exitCode !== 0) throw new UserError(`git ${args.join(' ')} failed: ${r.stderr.trim()}`, { hint: 'Run the release check inside the git repository (with its tags fetched: git fetch --tags).' });
  return r.stdout;
}

/** Shipped files that differ between the tag and the working tree (committed, staged, unstaged or untracked). */
export async function changedSince(tag: string, chartDir: string): Promise<string[]> {
  const top = (await git(['rev-parse', '--show-toplevel'], chartDir)).trim();
  const specs = shippedPathspecs(path.relative(top, chartDir));
  const diff = await git(['diff', '--name-only', tag, '--', ...specs], top);
  const untracked = await git(['ls-files', '--others', '--exclude-standard', '--', ...specs], top);
  return [...new Set([...diff.split('\n'), ...untracked.split('\n')].map((l) => l.trim()).filter(Boolean))].sort();
}

export async function releaseTags(chartDir: string): Promise<string[]> {
  return (await git(['tag', '--list', `${TAG_PREFIX}*`], chartDir))
    .split('\n')
    .map((t) => t.trim())
    .filter(Boolean);
}

export interface CheckOptions {
  meta: ChartMeta;
  helm: Helm;
  /** Skip the (slow) validate.ts --all run; reported as skipped. */
  skipValidate?: boolean;
  progress?: (note: string) => void;
  /** Runs one named check with progress/timing (the Reporter's step). */
  step?: <T>(title: string, fn: () => Promise<T>) => Promise<T>;
}

function readIfExists(file: string): string | undefined {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined;
}

export const VALIDATE_SCRIPT = path.join(REPO_ROOT, 'scripts', 'validate.ts');

export async function runReleaseChecks(o: CheckOptions): Promise<CheckResult[]> {
  const step = o.step ?? (<T>(_t: string, fn: () => Promise<T>) => fn());
  const { meta } = o;
  const results: CheckResult[] = [];
  const guard = async (name: string, fn: () => Promise<CheckResult | CheckResult[]>) => {
    try {
      results.push(...[await step(name, fn)].flat());
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      results.push({ name, status: 'failed', message: e.message, hint: e.hint });
    }
  };

  await guard('version bump', async () => {
    const tags = await releaseTags(meta.dir);
    const last = latestReleaseTag(tags);
    const changed = last ? await changedSince(last.tag, meta.dir) : [];
    return evaluateVersionBump({ version: meta.version, tags, changed });
  });

  let entry: ChangelogVersion | undefined;
  await guard('changelog entry', async () => {
    const file = path.join(meta.dir, CHANGELOG_FILE);
    const r = evaluateChangelog({ version: meta.version, changelog: readIfExists(file), changelogFile: displayPath(file) });
    entry = r.entry;
    return r.result;
  });
  await guard('artifacthub.io/changes', async () => evaluateArtifactHubChanges({ entry, annotation: meta.annotations['artifacthub.io/changes'] }));
  await guard('upgrade notes', async () => evaluateUpgradeNotes({ version: meta.version, text: readIfExists(UPGRADING_DOC), file: displayPath(UPGRADING_DOC) }));

  await guard('generated docs', async () => {
    if (path.resolve(meta.dir) !== path.resolve(CHART_DIR)) return { name: 'generated docs', status: 'skipped', message: 'only checked for the repository chart' };
    const { GENERATED_FILE_CHECKS } = await import('../domain/docs.ts');
    const found = [];
    for (const task of GENERATED_FILE_CHECKS) found.push(...[await task.run({ check: true })].flat());
    const stale = found.filter((f) => f.stale);
    return stale.length
      ? { name: 'generated docs', status: 'failed', message: `stale: ${stale.map((f) => `${f.file} (${f.name})`).join(', ')}`, hint: 'Run npx zx scripts/docs.ts and commit the result.' }
      : { name: 'generated docs', status: 'ok', message: `current: ${found.map((f) => f.file).join(', ')}` };
  });

  await guard('chart files', async () => {
    if (path.resolve(meta.dir) !== path.resolve(CHART_DIR)) return { name: 'chart files', status: 'skipped', message: 'only checked for the repository chart' };
    const { stale, current } = syncChartFiles({ check: true });
    return stale.length
      ? {
          name: 'chart files',
          status: 'failed',
          message: `chart/files/ differs from its sources: ${stale.join(', ')}`,
          hint: 'Run npx zx scripts/monitoring.ts sync (copies dashboards/ and alerts/ into chart/files/) and commit.',
        }
      : { name: 'chart files', status: 'ok', message: `chart/files/ is identical to dashboards/ and alerts/ (${current.length} files)` };
  });

  await guard('images', async () => {
    const values = parseYaml(fs.readFileSync(path.join(meta.dir, 'values.yaml'), 'utf8'));
    const r = await o.helm.run(o.helm.templateArgs({ release: 'release-check', chart: meta.dir, namespace: 'release-check' }));
    if (r.exitCode !== 0) return { name: 'images', status: 'failed', message: `the default render fails: ${r.stderr.trim().split('\n').slice(-3).join(' ')}` };
    return evaluateImages({ meta, values, rendered: renderedImages(r.stdout) });
  });

  await guard('helm lint', async () => {
    const r = await o.helm.run(o.helm.lintArgs({ chart: meta.dir }));
    return r.exitCode === 0
      ? { name: 'helm lint', status: 'ok', message: `helm ${o.helm.major} lint --strict passes` }
      : {
          name: 'helm lint',
          status: 'failed',
          message:
            (r.stdout + r.stderr)
              .trim()
              .split('\n')
              .filter((l) => /\[(ERROR|WARNING)\]|Error/.test(l))
              .join('; ') || 'helm lint failed',
        };
  });

  await guard('validate --all', async () => {
    if (o.skipValidate) return { name: 'validate --all', status: 'skipped', message: 'skipped (--skip-validate)' };
    if (!fs.existsSync(VALIDATE_SCRIPT)) return { name: 'validate --all', status: 'skipped', message: 'not available: scripts/validate.ts does not exist in this checkout' };
    const zxCli = path.join(REPO_ROOT, 'node_modules', 'zx', 'build', 'cli.js');
    const args = [zxCli, VALIDATE_SCRIPT, '--all', '--json', '--helm', String(o.helm.major), '--chart', meta.dir];
    const r = await run(process.execPath, ['--import', 'tsx', ...args], { cwd: REPO_ROOT, timeoutMs: 20 * 60_000 });
    const summary = summarizeValidation(r.stdout);
    return r.exitCode === 0
      ? { name: 'validate --all', status: 'ok', message: `validate.ts --all passes${summary ? `: ${summary}` : ''}` }
      : {
          name: 'validate --all',
          status: 'failed',
          message: `validate.ts --all exited ${r.exitCode}${summary ? `: ${summary}` : `: ${(r.stderr || r.stdout).trim().split('\n').slice(-5).join(' | ')}`}`,
          hint: 'Run npx zx scripts/validate.ts --all to see the findings.',
        };
  });
  return results;
}

/** Time of the last commit (Unix seconds) in the chart's repository, for reproducible archives; undefined outside git. */
export async function sourceDateEpoch(chartDir: string): Promise<number | undefined> {
  if (process.env.SOURCE_DATE_EPOCH && /^\d+$/.test(process.env.SOURCE_DATE_EPOCH)) return Number(process.env.SOURCE_DATE_EPOCH);
  const r = await run('git', ['log', '-1', '--format=%ct'], { cwd: chartDir });
  const n = Number(r.stdout.trim());
  return r.exitCode === 0 && Number.isInteger(n) && n > 0 ? n : undefined;
}

/** One line from validate.ts --json: which clusters, which Kubernetes versions, which failed. */
export function summarizeValidation(stdout: string): string {
  try {
    const doc = JSON.parse(stdout) as { ok?: boolean; kubeVersions?: string[]; clusters?: { cluster: string; ok: boolean }[]; error?: string };
    if (doc.error) return doc.error;
    const clusters = doc.clusters ?? [];
    const failed = clusters.filter((c) => !c.ok).map((c) => c.cluster);
    return `${clusters.length} cluster(s) × Kubernetes ${(doc.kubeVersions ?? []).join(', ')}${failed.length ? `; invalid: ${failed.join(', ')}` : ''}`;
  } catch {
    return '';
  }
}

/** gpg on PATH, or a tool error that says how to get it. */
export async function requireGpg(): Promise<string> {
  const r = await run('gpg', ['--version']);
  if (r.exitCode !== 0) throw toolError('gpg is not installed (needed to sign the chart)', "Install GnuPG: apt-get install gnupg (or your platform's package).");
  return 'gpg';
}

/** Fingerprint of a key in GNUPGHOME (undefined when gpg does not know it). */
export async function gpgFingerprint(gpgPath: string, key: string): Promise<string | undefined> {
  const r = await run(gpgPath, ['--batch', '--with-colons', '--fingerprint', key]);
  if (r.exitCode !== 0) return undefined;
  const lines = r.stdout.split('\n');
  const pub = lines.findIndex((l) => l.startsWith('pub:'));
  const fpr = lines.slice(pub + 1).find((l) => l.startsWith('fpr:'));
  return fpr?.split(':')[9] || undefined;
}
