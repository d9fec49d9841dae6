#!/usr/bin/env -S npx zx
// deploy.ts: deploy (install or upgrade) the conduit chart to a registered cluster.
import { confirmOnTerminal, runCommand } from './lib/cli.ts';
import { loadRegistry, selectClusters } from './lib/clusters.ts';
import type { CheckResult } from './lib/checklist.ts';
import { describePlan, diffRelease, diffStepTitle, executeDeploy, formatChecklist, planDeploy, preflightChecklist, renderLive, type DeployOutcome } from './lib/deploy.ts';
import { helmStoresSecrets, readRelease } from './lib/helmrelease.ts';
import { checkImages, formatImageCheck, imageCheckFailure, summarizeImageCheck, workloadImageUses, type ImageCheckReport } from './lib/imagecheck.ts';
import { usageError, UserError } from './lib/errors.ts';
import { helmBinary } from './lib/helm.ts';
import { Kube } from './lib/kube.ts';
import { localClusterStatus, upLocalCluster } from './lib/localcluster.ts';
import { kubeTargetFor, LOCAL_CONTEXT, type DeployTarget } from './lib/target.ts';
import { CHART_DIR } from './lib/paths.ts';
import { registerSecret } from './lib/redact.ts';
import { helmMajor, KUBERNETES_VERSION } from './lib/tools.ts';
import { formatMs, table } from './lib/ui.ts';
import type { ValidationReport } from './lib/validation.ts';
import { loadValuesFile, mergeUserLayers, parseSetFlags, setsAsValues, type PathSegment } from './lib/values.ts';

const spec = {
  name: 'deploy.ts',
  summary: 'Deploy the conduit chart to a registered cluster: validate, diff, confirm, lock, upgrade (rolled back on failure), verify, audit.',
  usage: ['npx zx scripts/deploy.ts [--cluster NAME] [--values FILE]... [--set k=v]... [--image-tag T] [--namespace NS] [--release NAME] [--diff release|live] [--always-upgrade] [--skip-image-check] [--dry-run] [--yes] [--timeout DUR] [--json]'],
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

/** Values of secret-looking --set keys are registered so that no output shows them. */
function registerSecretSets(sets: { path: PathSegment[]; value: unknown }[]): void {
  for (const s of sets) if (s.path.some((p) => typeof p === 'string' && SECRET_KEY.test(p)) && typeof s.value === 'string') registerSecret(s.value);
}

await runCommand(spec, async ({ flags, positionals, reporter }) => {
  if (positionals.length) throw usageError(`unexpected arguments: ${positionals.join(' ')}`, 'deploy.ts takes flags only (see --help).');
  const major = helmMajor(flags.helm);
  const diffMode = flags.diff;
  if (diffMode !== 'release' && diffMode !== 'live') throw usageError(`--diff "${diffMode}" is not known`, 'Use --diff release (the default) or --diff live.');
  const [cluster] = selectClusters(loadRegistry(), { cluster: flags.cluster });
  const isLocal = cluster.context === LOCAL_CONTEXT;
  const target: DeployTarget = {
    cluster: cluster.name,
    context: cluster.context,
    kubeconfig: kubeTargetFor(cluster.context).kubeconfig,
    namespace: flags.namespace ?? cluster.namespace,
    release: flags.release ?? cluster.release,
    protected: cluster.protected,
  };

  const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$/;
  for (const f of ['namespace', 'release'] as const) {
    const v = flags[f];
    if (v !== undefined && !DNS_LABEL.test(v)) throw usageError(`--${f} "${v}" is not a valid name`, 'Use lower-case letters, digits and "-", at most 53 characters, starting and ending with a letter or digit.');
  }
  const tag = flags['image-tag'];
  if (tag !== undefined && !IMAGE_TAG.test(tag)) throw usageError(`--image-tag "${tag}" is not a valid image tag`, 'Use letters, digits, ".", "_" and "-" (e.g. master-7c3fd76).');
  const setFlags = [...flags.set, ...(tag ? ['api', 'admin', 'webui'].map((c) => `${c}.image.tag=${tag}`) : [])];
  const assignments = parseSetFlags(setFlags);
  registerSecretSets(assignments);
  const valuesFiles = [...cluster.layers, ...flags.values];
  const userValues = mergeUserLayers(valuesFiles.map((f) => loadValuesFile(f)), assignments);
  const overrides = setsAsValues(assignments, userValues);

  // The built-in cluster comes up on demand. Its status is only asked when the API server does not
  // answer (the status check costs more than the answer itself).
  const kube = await Kube.connect({ context: target.context, kubeconfig: target.kubeconfig });
  // An upgrade of an installed release is gated (see below); the release is read alongside the checks.
  const gateable = !flags['dry-run'] && diffMode === 'release' && helmStoresSecrets() && process.env.CONDUIT_DEPLOY_GATE !== 'off';
  const readInstalled = () => (gateable ? readRelease(kube, target.namespace, target.release).catch(() => undefined) : Promise.resolve(undefined));
  let installedRead = readInstalled();
  let [reachable, version] = await Promise.all([kube.reachable(10_000), kube.serverVersion().catch(() => undefined)]);
  if (!reachable && isLocal && !flags['dry-run'] && !(await localClusterStatus()).running) {
    reporter.info('The local cluster is not running: starting it (npx zx scripts/cluster.ts up).');
    await upLocalCluster(reporter);
    [reachable, version] = await Promise.all([kube.reachable(10_000), kube.serverVersion().catch(() => undefined)]);
    installedRead = readInstalled();
  }
  const liveVersion = reachable && version ? version.gitVersion.replace(/^v/, '').replace(/[-+].*$/, '') : undefined;
  const kubeVersion = liveVersion ?? (isLocal ? KUBERNETES_VERSION : cluster.kubeVersion ? `${cluster.kubeVersion}.0` : KUBERNETES_VERSION);

  const skipImageCheck = Boolean(flags['skip-image-check']);
  const plan = planDeploy({ target, chartDir: CHART_DIR, valuesFiles, overrides, helmMajor: major, timeout: flags.timeout ?? '10m', diff: diffMode, strictlyValidated: true, checkImages: !skipImageCheck }, await helmBinary(major));
  // The validation module (Ajv, schema tooling) is loaded when needed: in a gated upgrade, while helm runs.
  const validate = async (progress?: (note: string) => void) =>
    (await import('./lib/validation.ts')).validateClusters({
      clusters: [{ ...cluster, namespace: target.namespace, release: target.release }],
      valuesFiles: flags.values, sets: setFlags, kubeVersions: [kubeVersion], helm: major, skip: ['kube-score', 'lint'], progress,
      onRender: (rendered) => {
        render = rendered;
        // The registries are asked as soon as the images are known, alongside the rest of the validation.
        if (!skipImageCheck && !imageCheck) {
          imageCheck = checkImages(workloadImageUses(rendered.manifest, { values: rendered.values, namespace: target.namespace }), { namespace: target.namespace, kube: reachable ? kube : undefined });
          imageCheck.catch(() => undefined);
        }
      },
    });
  const failure = (report: ValidationReport) => {
    const findings = report.clusters.flatMap((c) => c.steps.flatMap((s) => s.findings.map((f) => `  ${s.step}: ${f.location ? `${f.location}: ` : ''}${f.key ? `${f.key}: ` : ''}${f.message}${f.hint ? ` (${f.hint})` : ''}`)));
    return new UserError(`validation failed for ${cluster.name}; nothing was deployed:\n${findings.join('\n')}`, {
      hint: `Fix the values named above, then run: npx zx scripts/validate.ts --cluster ${cluster.name}`,
      details: report,
    });
  };
  const checklistOf = (manifest?: string) => {
    if (!render) throw new Error('validation passed without a render');
    // The live render when there is one: the same objects, parsed once for the diff and drift check too.
    const checks = preflightChecklist(cluster.name, cluster.environment, { ...render, manifest: manifest ?? render.manifest });
    reporter.info(`deployment checklist (${cluster.environment}): ${checks.filter((c) => c.status === 'pass').length} pass, ${checks.filter((c) => c.status === 'warn').length} warn\n${formatChecklist(checks)}`);
    return checks;
  };
  let render: { values: Record<string, unknown>; manifest: string } | undefined;
  let imageCheck: Promise<ImageCheckReport> | undefined;
  /** The registries' answers, reported; throws (UserError) when an image does not exist. */
  const imagesChecked = async (): Promise<ImageCheckReport> => {
    const report: ImageCheckReport = skipImageCheck ? { skipped: '--skip-image-check', results: [], warnings: [], ms: 0 } : await (imageCheck ?? Promise.reject(new Error('validation passed without a render')));
    reporter.info(summarizeImageCheck(report));
    for (const w of report.warnings) reporter.warn(w);
    const refused = imageCheckFailure(report, cluster.name);
    if (refused) throw refused;
    return report;
  };

  // An upgrade of an installed release is gated (see lib/gate.ts): helm starts at once and its own
  // render is validated, diffed and confirmed before it may apply anything. The validation runs from
  // then on, alongside the lock, the preflight and helm's start-up.
  const installed = reachable ? await installedRead : undefined;
  if (installed) {
    let checklist: CheckResult[] = [];
    let images: ImageCheckReport | undefined;
    const outcome = await executeDeploy(plan, kube, Object.assign(reporter, { confirm: confirmOnTerminal }), {
      yes: flags.yes,
      values: userValues as Record<string, unknown>,
      alwaysUpgrade: flags['always-upgrade'],
      gate: {
        release: installed,
        validate: async (): Promise<UserError | undefined> => {
          const report = await validate();
          if (!report.ok) return failure(report);
          reporter.info(`validated the values and the rendered chart (Kubernetes ${kubeVersion})`);
          try {
            checklist = checklistOf();
            images = await imagesChecked();
          } catch (e) {
            if (e instanceof UserError) return e;
            throw e;
          }
          return undefined;
        },
      },
    });
    reportOutcome(outcome, checklist, images);
    return 0;
  }

  // Otherwise (a first install, --diff live, --dry-run): validate first; meanwhile helm renders the
  // chart on the live cluster (lookups resolve), the manifest the upgrade applies, for the diff.
  const livePromise = reachable ? renderLive(plan) : undefined;
  livePromise?.catch(() => undefined);
  let liveManifest: string | undefined;
  const report = await reporter.step(`validate the values and the rendered chart (Kubernetes ${kubeVersion})`, async (progress) => {
    const r = await validate(progress);
    if (r.ok) liveManifest = await livePromise;
    return r;
  });
  if (!report.ok) throw failure(report);
  const checklist = checklistOf(liveManifest);
  const images = await imagesChecked();

  if (flags['dry-run']) {
    let diffText = '';
    let diff;
    if (reachable) {
      const manifest = liveManifest;
      diff = await reporter.step(diffStepTitle(plan, manifest), () => diffRelease(plan, kube, manifest)).catch((e: Error) => {
        reporter.warn(`no diff: ${e.message}`);
        return undefined;
      });
      if (diff) diffText = diff.firstInstall ? `first install: ${diff.objects.length} objects would be created` : diff.changed ? `${diff.objects.length} object(s) would change against ${diff.against}:\n${diff.text}` : `no changes against ${diff.against}`;
    } else diffText = `(no diff: the API server of context ${target.context} is not reachable${isLocal ? '; start it with npx zx scripts/cluster.ts up' : ''})`;
    const imageText = images.skipped ? summarizeImageCheck(images) : `${summarizeImageCheck(images)}\n${formatImageCheck(images)}`;
    reporter.result(`Dry run: validation passed; nothing was changed.\n\n${describePlan(plan)}\n\n${imageText}\n\n${diffText}`, {
      ok: true,
      dryRun: true,
      cluster: cluster.name,
      validation: { ok: report.ok },
      checklist,
      imageCheck: images,
      plan: { upgradeArgs: plan.upgradeArgs, lock: plan.lock, target: plan.target, imageCheck: plan.imageCheck },
      diff: diff ? { firstInstall: diff.firstInstall, changed: diff.changed, objects: diff.objects } : undefined,
    });
    return 0;
  }

  const outcome = await executeDeploy(plan, kube, Object.assign(reporter, { confirm: confirmOnTerminal }), {
    yes: flags.yes,
    manifest: liveManifest,
    values: userValues as Record<string, unknown>,
    alwaysUpgrade: flags['always-upgrade'],
  });
  reportOutcome(outcome, checklist, images);
  return 0;

  function reportOutcome(outcome: DeployOutcome, checklist: CheckResult[], imageReport: ImageCheckReport | undefined): void {
    const lines = [
      outcome.result === 'unchanged'
        ? `Nothing to change on ${cluster.name} (namespace ${target.namespace}): revision ${outcome.revision} kept (same values and objects, no edits outside helm), chart ${outcome.chartVersion}, app ${outcome.appVersion}, checked in ${formatMs(outcome.ms)}. --always-upgrade records a new revision anyway.`
        : `Deployed ${target.release} to ${cluster.name} (namespace ${target.namespace}): revision ${outcome.revision}${outcome.previousRevision ? ` (was ${outcome.previousRevision})` : ' (first install)'}, chart ${outcome.chartVersion}, app ${outcome.appVersion}, in ${formatMs(outcome.ms)}.`,
      '',
      table(['workload', 'ready'], outcome.workloads.map((w) => [`${w.kind}/${w.name}`, w.ready])),
      ...(outcome.audit
        ? [
            '',
            `audit: entry ${outcome.audit.key} (${outcome.result}) in ConfigMap conduit-audit of ${target.namespace}; values ${outcome.audit.valuesDigest}` +
              (outcome.audit.images ? `; images: ${[...new Set(Object.values(outcome.audit.images).flat())].join(', ')}` : ''),
          ]
        : []),
      ...outcome.warnings.map((w) => `warning: ${w}`),
    ];
    reporter.result(lines.join('\n'), { ok: true, cluster: cluster.name, ...outcome, checklist, imageCheck: imageReport });
  }
});
