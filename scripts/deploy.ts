#!/usr/bin/env -S npx zx
// deploy.ts: deploy (install or upgrade) the conduit chart to a registered cluster.
import { confirmOnTerminal, runCommand, type ParsedFlags } from './lib/core/cli.ts';
import { loadRegistry, selectClusters, type ClusterConfig } from './lib/domain/clusters.ts';
import type { CheckResult } from './lib/domain/checklist.ts';
import {
  describePlan,
  diffRelease,
  diffStepTitle,
  executeDeploy,
  formatChecklist,
  planDeploy,
  preflightChecklist,
  renderLive,
  type DeployOutcome,
  type DeployPlan,
  type DeploySteps,
  type DiffMode,
} from './lib/engines/deploy.ts';
import { helmStoresSecrets, readRelease, type HelmRelease } from './lib/domain/helmrelease.ts';
import { checkImages, formatImageCheck, imageCheckFailure, summarizeImageCheck, workloadImageUses, type ImageCheckReport } from './lib/domain/imagecheck.ts';
import { usageError, UserError } from './lib/core/errors.ts';
import { Kube } from './lib/adapters/kube.ts';
import { localClusterStatus, upLocalCluster } from './lib/engines/cluster.ts';
import { connectKube, helmBinary, resolveTarget, LOCAL_CONTEXT, type DeployTarget } from './lib/domain/target.ts';
import { CHART_DIR } from './lib/core/paths.ts';
import { registerSecret } from './lib/core/redact.ts';
import { KUBERNETES_VERSION } from './lib/adapters/tools.ts';
import { helmMajor, type HelmMajor } from './lib/adapters/helm.ts';
import { formatMs, table, type Reporter } from './lib/core/ui.ts';
import type { ClusterRender, ValidationReport } from './lib/engines/validate.ts';
import { loadChartDefaults, parseSetFlags, prepareValues, type PathSegment, type PreparedValues } from './lib/domain/values.ts';

const spec = {
  name: 'deploy.ts',
  summary: 'Deploy the conduit chart to a registered cluster: validate, diff, confirm, lock, upgrade (rolled back on failure), verify, audit.',
  usage: [
    'npx zx scripts/deploy.ts [--cluster NAME] [--values FILE]... [--set k=v]... [--image-tag T] [--namespace NS] [--release NAME] [--diff release|live] [--always-upgrade] [--skip-image-check] [--dry-run] [--yes] [--timeout DUR] [--json]',
  ],
  flags: {
    cluster: { type: 'string' as const, arg: 'NAME', description: 'Target from values/clusters.yaml.', default: 'local' },
    values: { type: 'string' as const, arg: 'FILE', multiple: true as const, description: 'Extra values file, after the cluster layers.' },
    set: { type: 'string' as const, arg: 'K=V', multiple: true as const, description: 'Value override, applied last (sent to helm on stdin, never in argv).' },
    'image-tag': { type: 'string' as const, arg: 'T', description: 'Image tag of api, admin and webui (they are released together).' },
    'dry-run': { type: 'boolean' as const, description: 'Validate and diff against the live release, print the plan; change nothing.' },
    yes: { type: 'boolean' as const, description: 'Confirm a deploy to a protected cluster without asking.' },
    timeout: { type: 'string' as const, arg: 'DUR', description: 'How long helm waits for the rollout before rolling back.', default: '10m' },
    namespace: { type: 'string' as const, arg: 'NS', description: "Deploy into this namespace instead of the registry's (e.g. a throw-away copy of a cluster's release)." },
    release: { type: 'string' as const, arg: 'NAME', description: "Helm release name instead of the registry's." },
    helm: { type: 'string' as const, arg: '3|4', description: 'Helm major version (default 4, or CONDUIT_HELM_MAJOR).' },
    'always-upgrade': { type: 'boolean' as const, description: 'Run helm upgrade (a new revision) even when nothing changed.' },
    diff: { type: 'string' as const, arg: 'release|live', description: 'Diff against the deployed revision (fast) or the live objects (also shows edits made outside helm).', default: 'release' },
    'skip-image-check': { type: 'boolean' as const, description: "Do not ask the images' registries whether each tag or digest exists (for sites whose registry this machine cannot reach)." },
  },
  examples: [
    'npx zx scripts/deploy.ts                                   # the built-in local cluster (started if needed)',
    'npx zx scripts/deploy.ts --cluster staging --image-tag master-7c3fd76 --dry-run',
    'npx zx scripts/deploy.ts --cluster prod-eu --image-tag master-7c3fd76 --yes --timeout 15m',
  ],
  notes: [
    'Before anything changes, every workload image is asked for at its registry: a tag or digest the registry does not have',
    'stops the deploy (exit 1, naming the image and the values key); an unreachable registry is a warning (--skip-image-check skips this).',
    'A deploy holds the Lease conduit-deploy-lock in the namespace: a second deploy fails at once, naming the holder.',
    'Every deploy is recorded in the ConfigMap conduit-audit of the namespace (no secret values).',
    'When the values, the rendered objects and the live objects all match the deployed revision, nothing is upgraded',
    '(result "unchanged", no empty revision eating the rollback history); --always-upgrade runs helm anyway.',
    'Ctrl-C or SIGTERM during a deploy brings it to a consistent state first: helm is stopped cleanly, a half-applied',
    'release is rolled back, the lock released, the audit entry says "interrupted"; exit code 130.',
  ],
};

const IMAGE_TAG = /^[\w][\w.-]{0,127}$/;
const SECRET_KEY = /(pass(word)?|secret|token|key|credential)/i;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$/;

type Flags = ParsedFlags<typeof spec.flags>;

/** Values of secret-looking --set keys are registered so that no output shows them. */
function registerSecretSets(sets: { path: PathSegment[]; value: unknown }[]): void {
  for (const s of sets) if (s.path.some((p) => typeof p === 'string' && SECRET_KEY.test(p)) && typeof s.value === 'string') registerSecret(s.value);
}

/** What the command line asks for, checked and resolved once: the target, the helm version, the values. */
interface DeployRun {
  flags: Flags;
  reporter: Reporter;
  cluster: ClusterConfig;
  target: DeployTarget;
  isLocal: boolean;
  major: HelmMajor;
  diffMode: DiffMode;
  skipImageCheck: boolean;
  /** The values files in helm's order: the cluster's layers, then --values. */
  valuesFiles: string[];
  /** Merged once: validated, compared with the deployed revision, handed to helm. */
  values: PreparedValues;
}

/** The cluster as found: reachable or not, its Kubernetes version, the installed release (read alongside). */
interface LiveCluster {
  kube: Kube;
  reachable: boolean;
  kubeVersion: string;
  installed: Promise<HelmRelease | undefined>;
}

/** What the pre-flight found on a valid render: the checklist and the images' registries' answers. */
interface Checked {
  checklist: CheckResult[];
  images: ImageCheckReport;
}

/** A validation of this deploy's values and render; the image check runs from the moment the images are known. */
interface Validated {
  report: ValidationReport;
  render?: ClusterRender;
  images?: Promise<ImageCheckReport>;
}

function resolveRun(flags: Flags, positionals: string[], reporter: Reporter): DeployRun {
  if (positionals.length) throw usageError(`unexpected arguments: ${positionals.join(' ')}`, 'deploy.ts takes flags only (see --help).');
  const major = helmMajor(flags.helm);
  const diffMode = flags.diff;
  if (diffMode !== 'release' && diffMode !== 'live') throw usageError(`--diff "${diffMode}" is not known`, 'Use --diff release (the default) or --diff live.');
  const [cluster] = selectClusters(loadRegistry(), { cluster: flags.cluster });
  for (const f of ['namespace', 'release'] as const) {
    const v = flags[f];
    if (v !== undefined && !DNS_LABEL.test(v))
      throw usageError(`--${f} "${v}" is not a valid name`, 'Use lower-case letters, digits and "-", at most 53 characters, starting and ending with a letter or digit.');
  }
  const tag = flags['image-tag'];
  if (tag !== undefined && !IMAGE_TAG.test(tag)) throw usageError(`--image-tag "${tag}" is not a valid image tag`, 'Use letters, digits, ".", "_" and "-" (e.g. master-7c3fd76).');
  const assignments = parseSetFlags([...flags.set, ...(tag ? ['api', 'admin', 'webui'].map((c) => `${c}.image.tag=${tag}`) : [])]);
  registerSecretSets(assignments);
  const valuesFiles = [...cluster.layers, ...flags.values];
  return {
    flags,
    reporter,
    cluster,
    major,
    diffMode,
    target: resolveTarget(cluster, { namespace: flags.namespace, release: flags.release }),
    isLocal: cluster.context === LOCAL_CONTEXT,
    skipImageCheck: Boolean(flags['skip-image-check']),
    valuesFiles,
    values: prepareValues(loadChartDefaults(CHART_DIR), valuesFiles, assignments),
  };
}

/**
 * Reach the cluster; the built-in one comes up on demand. Its status is only asked when the API server
 * does not answer (the status check costs more than the answer itself). An upgrade of an installed
 * release is gated (see below): the release is read alongside the checks.
 */
async function connect(run: DeployRun): Promise<LiveCluster> {
  const { target, flags, isLocal } = run;
  const kube = await connectKube({ context: target.context, kubeconfig: target.kubeconfig });
  const gateable = !flags['dry-run'] && run.diffMode === 'release' && helmStoresSecrets() && process.env.CONDUIT_DEPLOY_GATE !== 'off';
  const readInstalled = () => (gateable ? readRelease(kube, target.namespace, target.release).catch(() => undefined) : Promise.resolve(undefined));
  let installed = readInstalled();
  let [reachable, version] = await Promise.all([kube.reachable(10_000), kube.serverVersion().catch(() => undefined)]);
  if (!reachable && isLocal && !flags['dry-run'] && !(await localClusterStatus()).running) {
    run.reporter.info('The local cluster is not running: starting it (npx zx scripts/cluster.ts up).');
    await upLocalCluster(run.reporter);
    [reachable, version] = await Promise.all([kube.reachable(10_000), kube.serverVersion().catch(() => undefined)]);
    installed = readInstalled();
  }
  const liveVersion = reachable && version ? version.gitVersion.replace(/^v/, '').replace(/[-+].*$/, '') : undefined;
  const kubeVersion = liveVersion ?? (isLocal ? KUBERNETES_VERSION : run.cluster.kubeVersion ? `${run.cluster.kubeVersion}.0` : KUBERNETES_VERSION);
  return { kube, reachable, kubeVersion, installed: reachable ? installed : Promise.resolve(undefined) };
}

function planFor(run: DeployRun, helm: string): DeployPlan {
  const { flags } = run;
  return planDeploy(
    {
      target: run.target,
      chartDir: CHART_DIR,
      valuesFiles: run.valuesFiles,
      overrides: run.values.overrides,
      helmMajor: run.major,
      timeout: flags.timeout ?? '10m',
      diff: run.diffMode,
      strictlyValidated: true,
      checkImages: !run.skipImageCheck,
    },
    helm,
  );
}

/** The values (merged once, by resolveRun) and the render, validated for the cluster's Kubernetes; the images' registries are asked meanwhile. */
async function validateRender(run: DeployRun, live: LiveCluster, progress?: (note: string) => void): Promise<Validated> {
  // The validation module (Ajv, schema tooling) is loaded when needed: in a gated upgrade, while helm runs.
  const { startValidation } = await import('./lib/engines/validate.ts');
  const { cluster, target } = run;
  const staged = await startValidation({
    clusters: [{ ...cluster, namespace: target.namespace, release: target.release }],
    prepared: { [cluster.name]: run.values },
    kubeVersions: [live.kubeVersion],
    helm: run.major,
    skip: ['kube-score', 'lint'],
    progress,
  });
  const render = staged.renders.at(-1);
  // The registries are asked as soon as the images are known, alongside the rest of the validation.
  const images =
    render && !run.skipImageCheck
      ? checkImages(workloadImageUses(render.manifest, { values: render.values, namespace: target.namespace }), { namespace: target.namespace, kube: live.reachable ? live.kube : undefined })
      : undefined;
  images?.catch(() => undefined);
  return { report: await staged.report, render, images };
}

function validationFailure(run: DeployRun, report: ValidationReport): UserError {
  const findings = report.clusters.flatMap((c) =>
    c.steps.flatMap((s) => s.findings.map((f) => `  ${s.step}: ${f.location ? `${f.location}: ` : ''}${f.key ? `${f.key}: ` : ''}${f.message}${f.hint ? ` (${f.hint})` : ''}`)),
  );
  return new UserError(`validation failed for ${run.cluster.name}; nothing was deployed:\n${findings.join('\n')}`, {
    hint: `Fix the values named above, then run: npx zx scripts/validate.ts --cluster ${run.cluster.name}`,
    details: report,
  });
}

/** The deployment checklist over the validated render (or, when there is one, the live render: the same objects, parsed once for the diff and drift check too). */
function runChecklist(run: DeployRun, render: ClusterRender | undefined, manifest?: string): CheckResult[] {
  if (!render) throw new Error('validation passed without a render');
  const { cluster, reporter } = run;
  const checks = preflightChecklist(cluster.name, cluster.environment, { values: render.values, manifest: manifest ?? render.manifest });
  reporter.info(
    `deployment checklist (${cluster.environment}): ${checks.filter((c) => c.status === 'pass').length} pass, ${checks.filter((c) => c.status === 'warn').length} warn\n${formatChecklist(checks)}`,
  );
  return checks;
}

/** The registries' answers, reported; throws (UserError) when an image does not exist. */
async function imagesChecked(run: DeployRun, images: Promise<ImageCheckReport> | undefined): Promise<ImageCheckReport> {
  const report: ImageCheckReport = run.skipImageCheck
    ? { skipped: '--skip-image-check', results: [], warnings: [], ms: 0 }
    : await (images ?? Promise.reject(new Error('validation passed without a render')));
  run.reporter.info(summarizeImageCheck(report));
  for (const w of report.warnings) run.reporter.warn(w);
  const refused = imageCheckFailure(report, run.cluster.name);
  if (refused) throw refused;
  return report;
}

function deploySteps(run: DeployRun): DeploySteps {
  return Object.assign(run.reporter, { confirm: confirmOnTerminal });
}

/**
 * The checks of a gated upgrade, run on helm's own render while helm waits at the gate; what they
 * found is kept here for the final report.
 */
class GatedChecks {
  readonly run: DeployRun;
  readonly live: LiveCluster;
  found?: Checked;

  constructor(run: DeployRun, live: LiveCluster) {
    this.run = run;
    this.live = live;
  }

  /** Settles with the reason to refuse the upgrade, or undefined when it may go on. */
  async validate(): Promise<UserError | undefined> {
    const v = await validateRender(this.run, this.live);
    if (!v.report.ok) return validationFailure(this.run, v.report);
    this.run.reporter.info(`validated the values and the rendered chart (Kubernetes ${this.live.kubeVersion})`);
    try {
      const checklist = runChecklist(this.run, v.render);
      this.found = { checklist, images: await imagesChecked(this.run, v.images) };
    } catch (e) {
      if (e instanceof UserError) return e;
      throw e;
    }
    return undefined;
  }
}

/**
 * An upgrade of an installed release is gated (see lib/gate.ts): helm starts at once and its own
 * render is validated, diffed and confirmed before it may apply anything. The validation runs from
 * then on, alongside the lock, the preflight and helm's start-up.
 */
async function gatedUpgrade(run: DeployRun, live: LiveCluster, plan: DeployPlan, installed: HelmRelease): Promise<void> {
  const checks = new GatedChecks(run, live);
  const outcome = await executeDeploy(plan, live.kube, deploySteps(run), {
    yes: run.flags.yes,
    values: run.values.merged.user,
    alwaysUpgrade: run.flags['always-upgrade'],
    gate: { release: installed, validate: () => checks.validate() },
  });
  reportOutcome(run, outcome, checks.found?.checklist ?? [], checks.found?.images);
}

/**
 * Otherwise (a first install, --diff live, --dry-run): validate first; meanwhile helm renders the
 * chart on the live cluster (lookups resolve), the manifest the upgrade applies, for the diff.
 */
async function validateThenDeploy(run: DeployRun, live: LiveCluster, plan: DeployPlan): Promise<void> {
  const livePromise = live.reachable ? renderLive(plan) : undefined;
  livePromise?.catch(() => undefined);
  const validated = await run.reporter.step(`validate the values and the rendered chart (Kubernetes ${live.kubeVersion})`, async (progress) => {
    const v = await validateRender(run, live, progress);
    return { ...v, liveManifest: v.report.ok ? await livePromise : undefined };
  });
  if (!validated.report.ok) throw validationFailure(run, validated.report);
  const checked = { checklist: runChecklist(run, validated.render, validated.liveManifest), images: await imagesChecked(run, validated.images) };
  if (run.flags['dry-run']) return reportDryRun(run, live, plan, validated.liveManifest, checked);
  const outcome = await executeDeploy(plan, live.kube, deploySteps(run), {
    yes: run.flags.yes,
    manifest: validated.liveManifest,
    values: run.values.merged.user,
    alwaysUpgrade: run.flags['always-upgrade'],
  });
  reportOutcome(run, outcome, checked.checklist, checked.images);
}

/** --dry-run: the plan, the images' answers and the diff against the cluster; nothing changes. */
async function reportDryRun(run: DeployRun, live: LiveCluster, plan: DeployPlan, manifest: string | undefined, checked: Checked): Promise<void> {
  const { reporter, target } = run;
  let diffText = '';
  let diff;
  if (live.reachable) {
    diff = await reporter
      .step(diffStepTitle(plan, manifest), () => diffRelease(plan, live.kube, manifest))
      .catch((e: Error) => {
        reporter.warn(`no diff: ${e.message}`);
        return undefined;
      });
    if (diff)
      diffText = diff.firstInstall
        ? `first install: ${diff.objects.length} objects would be created`
        : diff.changed
          ? `${diff.objects.length} object(s) would change against ${diff.against}:\n${diff.text}`
          : `no changes against ${diff.against}`;
  } else diffText = `(no diff: the API server of context ${target.context} is not reachable${run.isLocal ? '; start it with npx zx scripts/cluster.ts up' : ''})`;
  const images = checked.images;
  const imageText = images.skipped ? summarizeImageCheck(images) : `${summarizeImageCheck(images)}\n${formatImageCheck(images)}`;
  reporter.result(`Dry run: validation passed; nothing was changed.\n\n${describePlan(plan)}\n\n${imageText}\n\n${diffText}`, {
    ok: true,
    dryRun: true,
    cluster: run.cluster.name,
    validation: { ok: true },
    checklist: checked.checklist,
    imageCheck: images,
    plan: { upgradeArgs: plan.upgradeArgs, lock: plan.lock, target: plan.target, imageCheck: plan.imageCheck },
    diff: diff ? { firstInstall: diff.firstInstall, changed: diff.changed, objects: diff.objects } : undefined,
  });
}

function reportOutcome(run: DeployRun, outcome: DeployOutcome, checklist: CheckResult[], imageReport: ImageCheckReport | undefined): void {
  const { cluster, target } = run;
  const lines = [
    outcome.result === 'unchanged'
      ? `Nothing to change on ${cluster.name} (namespace ${target.namespace}): revision ${outcome.revision} kept (same values and objects, no edits outside helm), chart ${outcome.chartVersion}, app ${outcome.appVersion}, checked in ${formatMs(outcome.ms)}. --always-upgrade records a new revision anyway.`
      : `Deployed ${target.release} to ${cluster.name} (namespace ${target.namespace}): revision ${outcome.revision}${outcome.previousRevision ? ` (was ${outcome.previousRevision})` : ' (first install)'}, chart ${outcome.chartVersion}, app ${outcome.appVersion}, in ${formatMs(outcome.ms)}.`,
    '',
    table(
      ['workload', 'ready'],
      outcome.workloads.map((w) => [`${w.kind}/${w.name}`, w.ready]),
    ),
    ...(outcome.audit
      ? [
          '',
          `audit: entry ${outcome.audit.key} (${outcome.result}) in ConfigMap conduit-audit of ${target.namespace}; values ${outcome.audit.valuesDigest}` +
            (outcome.audit.images ? `; images: ${[...new Set(Object.values(outcome.audit.images).flat())].join(', ')}` : ''),
        ]
      : []),
    ...outcome.warnings.map((w) => `warning: ${w}`),
  ];
  run.reporter.result(lines.join('\n'), { ok: true, cluster: cluster.name, ...outcome, checklist, imageCheck: imageReport });
}

await runCommand(spec, async ({ flags, positionals, reporter }) => {
  const run = resolveRun(flags, positionals, reporter);
  const live = await connect(run);
  const plan = planFor(run, await helmBinary(run.major));
  const installed = await live.installed;
  if (installed) await gatedUpgrade(run, live, plan, installed);
  else await validateThenDeploy(run, live, plan);
  return 0;
});
