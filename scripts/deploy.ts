#!/usr/bin/env -S npx zx
// deploy.ts: deploy (install or upgrade) the conduit chart to a registered cluster.
import { confirmOnTerminal, runCommand } from './lib/core/cli.ts';
import type { CheckResult } from './lib/domain/checklist.ts';
import { describePlan, executeDeployRun, resolveDeployRun, type DeployOutcome, type DeployRun, type DeployRunHooks, type DeployRunResult } from './lib/engines/deploy.ts';
import { formatImageCheck, summarizeImageCheck, type ImageCheckReport } from './lib/domain/imagecheck.ts';
import { localClusterStatus, upLocalCluster } from './lib/engines/cluster.ts';
import { formatMs, table } from './lib/core/ui.ts';
import { reportPermissions } from './lib/domain/permission-check.ts';
import { connectKube } from './lib/domain/target.ts';

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
    registry: { type: 'string' as const, arg: 'FILE', description: 'Cluster registry to read instead of values/clusters.yaml.' },
    'check-permissions': {
      type: 'boolean' as const,
      description: 'Only ask the API server whether this identity has every permission a deploy needs (docs/rbac.md); exit 1 naming each missing one. Changes nothing.',
    },
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

/** --dry-run: the plan, the images' answers and the diff against the cluster; nothing changes. */
function reportDryRun(run: DeployRun, dry: Extract<DeployRunResult, { kind: 'dry-run' }>): void {
  const { reporter, target } = run;
  const { plan, diff, checked } = dry;
  let diffText = '';
  if (dry.reachable) {
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

/** What deploy needs of other verbs: the validation (loaded when needed), the local cluster, the terminal. */
const deployHooks: DeployRunHooks = {
  validation: async () => (await import('./lib/engines/validate.ts')).startValidation,
  localCluster: { running: async () => (await localClusterStatus()).running, up: async (reporter) => void (await upLocalCluster(reporter)) },
  confirm: confirmOnTerminal,
};

await runCommand(spec, async ({ flags, positionals, reporter }) => {
  const run = resolveDeployRun(flags, positionals, reporter, deployHooks);
  if (flags['check-permissions']) return reportPermissions(await connectKube({ context: run.target.context, kubeconfig: run.target.kubeconfig }), 'deploy', run.target, reporter);
  const result = await executeDeployRun(run);
  if (result.kind === 'dry-run') reportDryRun(run, result);
  else reportOutcome(run, result.outcome, result.checklist, result.images);
  return 0;
});
