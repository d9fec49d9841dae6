#!/usr/bin/env -S npx zx
// runbook.ts: the actions operators reach for during an incident, on a registered cluster.
import { confirmOnTerminal, runCommand, type Invocation } from './lib/core/cli.ts';
import { loadRegistry, selectClusters } from './lib/domain/clusters.ts';
import { UserError } from './lib/core/errors.ts';
import { isKubeError, explainKubeError } from './lib/adapters/kube.ts';
import { connectKube, helmClient, resolveTarget } from './lib/domain/target.ts';
import {
  auditExport,
  collectHistory,
  collectLogs,
  collectStatus,
  confirmChange,
  describeRunbookPlan,
  executeChange,
  formatHistory,
  formatStatus,
  helmScopeOf,
  parseRequest,
  planAction,
  planJson,
  readFacts,
  registerReleaseSecrets,
  writeDiagnoseBundle,
  type LiveFacts,
  type RunbookContext,
  type RunbookPlan,
  type RunbookRequest,
  type RunbookTarget,
} from './lib/engines/runbook.ts';
import { executeUnlock } from './lib/engines/runbook-unlock.ts';
import type { Reporter } from './lib/core/ui.ts';
import { helmMajor } from './lib/adapters/helm.ts';
import { reportPermissions, requirePermissions } from './lib/domain/permission-check.ts';

const spec = {
  name: 'runbook.ts',
  summary: 'Incident actions on a deployed release: look (status, history, logs, diagnose) and act (rollback, restart, scale, rotate-master-key, unlock).',
  usage: ['npx zx scripts/runbook.ts ACTION --cluster NAME [flags] [--dry-run] [--yes] [--json]'],
  verbs: {
    status: 'Release, revision, chart/app/image versions, pods ready, HPA state, recent warnings, the deploy lock holder.',
    history: 'Helm release history (--max N) with the audit trail alongside.',
    rollback: 'helm rollback to the previous revision (or --to REV) under the deploy lock, then verify the rollout.',
    restart: 'Rolling restart of --component api|admin|webui|all (pod-template annotation), waits for the rollout.',
    scale: 'Set --replicas N, or for an autoscaled component the HPA bounds --hpa-min N --hpa-max M.',
    logs: 'Recent logs of every pod of --component (default all), redacted; --since DUR, --tail N.',
    'rotate-master-key': 'New random key in the chart-owned master-key Secret, roll api/admin/webui onto it, verify.',
    diagnose: 'Write a support bundle (tar.gz): status, events, describe, logs, masked values, history, audit trail.',
    unlock: 'Clear the deploy lock of a holder that is gone for good (another machine); refused while its holder runs on this host. Audited.',
  },
  flags: {
    cluster: { type: 'string' as const, arg: 'NAME', description: 'Target from values/clusters.yaml.', default: 'local' },
    component: { type: 'string' as const, arg: 'C', description: 'api, admin or webui (restart and logs also take all).' },
    replicas: { type: 'string' as const, arg: 'N', description: 'scale: replica count of a component without an HPA.' },
    'hpa-min': { type: 'string' as const, arg: 'N', description: "scale: new minReplicas of the component's HPA (with --hpa-max)." },
    'hpa-max': { type: 'string' as const, arg: 'M', description: "scale: new maxReplicas of the component's HPA (with --hpa-min)." },
    to: { type: 'string' as const, arg: 'REV', description: 'rollback: the revision to return to (default: the previous one).' },
    since: { type: 'string' as const, arg: 'DUR', description: 'logs: only lines newer than DUR (e.g. 15m).' },
    tail: { type: 'string' as const, arg: 'N', description: 'logs: last N lines per pod (default 200).' },
    max: { type: 'string' as const, arg: 'N', description: 'history: revisions shown (default 10).' },
    out: { type: 'string' as const, arg: 'FILE', description: 'diagnose: where to write the bundle (default ./conduit-diagnose-CLUSTER-TIME.tar.gz).' },
    timeout: { type: 'string' as const, arg: 'DUR', description: 'How long to wait for rollouts (rollback, restart, scale, rotate-master-key; default 5m).' },
    'dry-run': { type: 'boolean' as const, description: 'Print the plan (what would run and be patched); change nothing.' },
    yes: { type: 'boolean' as const, description: 'Confirm a change on a protected cluster without asking.' },
    helm: { type: 'string' as const, arg: '3|4', description: 'Helm major version (default 4, or CONDUIT_HELM_MAJOR).' },
    registry: { type: 'string' as const, arg: 'FILE', description: 'Cluster registry to read instead of values/clusters.yaml.' },
    'check-permissions': {
      type: 'boolean' as const,
      description: 'Only ask the API server whether this identity has every permission ACTION needs (docs/rbac.md); exit 1 naming each missing one. Changes nothing.',
    },
  },
  examples: [
    'npx zx scripts/runbook.ts status --cluster prod-eu',
    'npx zx scripts/runbook.ts rollback --cluster prod-eu --dry-run',
    'npx zx scripts/runbook.ts restart --cluster staging --component api',
    'npx zx scripts/runbook.ts scale --cluster prod-eu --component api --hpa-min 4 --hpa-max 12 --yes',
    'npx zx scripts/runbook.ts diagnose --cluster prod-us --out /tmp/incident.tar.gz',
    'npx zx scripts/runbook.ts unlock --cluster prod-eu --dry-run',
  ],
  notes: [
    'Changes (rollback, restart, scale, rotate-master-key) hold the deploy Lease conduit-deploy-lock, are recorded in the',
    'ConfigMap conduit-audit, and need --yes (or a yes on a terminal) on protected clusters. A later deploy re-applies the',
    'values: replica counts and HPA bounds set here last until then. Each action is described in docs/runbooks/actions.md.',
  ],
};

type Flags = Invocation<typeof spec.flags>['flags'];

function requestOf(action: string | undefined, flags: Flags): RunbookRequest {
  return parseRequest(action, {
    component: flags.component,
    replicas: flags.replicas,
    'hpa-min': flags['hpa-min'],
    'hpa-max': flags['hpa-max'],
    to: flags.to,
    since: flags.since,
    tail: flags.tail,
    max: flags.max,
    out: flags.out,
    timeout: flags.timeout,
  });
}

/** Carry out the action (a look or a change) and report it. */
async function perform(ctx: RunbookContext, req: RunbookRequest, plan: RunbookPlan, facts: LiveFacts, reporter: Reporter): Promise<number> {
  const cluster = ctx.target.cluster;
  const started = performance.now();
  switch (req.action) {
    case 'status': {
      await registerReleaseSecrets(ctx.kube, ctx.target);
      const s = await reporter.step('read the release status', () => collectStatus(ctx));
      reporter.result(formatStatus(s), { ok: true, action: 'status', cluster, ...s });
      return 0;
    }
    case 'history': {
      const h = await reporter.step('read history and audit trail', () => collectHistory(ctx, req.max));
      reporter.result(formatHistory(h), { ok: true, action: 'history', cluster, ...h });
      return 0;
    }
    case 'logs': {
      const logs = await collectLogs(
        ctx,
        req.components.filter((c) => !facts.components || facts.components.includes(c)),
        { tail: req.tail, sinceSeconds: req.sinceSeconds },
      );
      const human = logs.map((l) => `==> ${l.component} ${l.pod} <==\n${l.error ? `(no logs: ${l.error})` : l.logs.trimEnd() || '(empty)'}`).join('\n\n') || '(no pods)';
      reporter.result(human, { ok: true, action: 'logs', cluster, pods: logs });
      return 0;
    }
    case 'diagnose': {
      const b = await writeDiagnoseBundle(ctx, req.out);
      await auditExport(ctx, plan, `support bundle written (${b.entries.length} files, ${b.bytes} bytes)`, started, { files: b.entries.length, bytes: b.bytes });
      reporter.result(`Support bundle: ${b.file} (${(b.bytes / 1024).toFixed(1)} KiB, ${b.entries.length} files). Secret values are masked; check before sharing.`, {
        ok: true,
        action: 'diagnose',
        cluster,
        ...b,
      });
      return 0;
    }
    case 'unlock': {
      const u = await reporter.step('clear the deploy lock', () => executeUnlock(ctx));
      reporter.result([`${u.summary}.`, ...u.warnings.map((w) => `warning: ${w}`)].join('\n'), { ok: true, cluster, ...u });
      return 0;
    }
    default: {
      reporter.info(describeRunbookPlan(plan));
      const out = await executeChange(ctx, plan);
      reporter.result([`${out.summary}.`, ...out.notes.map((n) => `note: ${n}`)].join('\n'), { ok: true, cluster, ...out });
      return 0;
    }
  }
}

await runCommand(spec, async ({ flags, positionals, reporter }) => {
  const [action, ...rest] = positionals;
  if (rest.length) throw new UserError(`unexpected arguments: ${rest.join(' ')}`, { exitCode: 2, hint: 'runbook.ts takes one ACTION and flags (see --help).' });
  const req = requestOf(action, flags);
  const [cluster] = selectClusters(loadRegistry(flags.registry), { cluster: flags.cluster });
  const target = resolveTarget(cluster);
  const kube = await connectKube({ context: target.context, kubeconfig: target.kubeconfig });
  const helm = await helmClient(helmMajor(flags.helm));
  const ctx: RunbookContext = { target, kube, helm: helm.withScope(helmScopeOf(target)), step: (title, fn) => reporter.step(title, () => fn()) };

  try {
    if (!(await kube.reachable(10_000))) {
      throw new UserError(`the API server of context ${target.context} is not reachable`, {
        hint: cluster.name === 'local' ? 'Start it: npx zx scripts/cluster.ts up' : 'Check the kube context and your connection.',
      });
    }
    if (flags['check-permissions']) return await reportPermissions(kube, `runbook ${req.action}`, target, reporter);
    // Every permission the action needs is asked for before it reads or changes anything (docs/rbac.md).
    if (!flags['dry-run']) await requirePermissions(kube, `runbook ${req.action}`, target);
    const facts = await readFacts(ctx, req);
    const plan = planAction(target, req, facts, helm);
    if (flags['dry-run']) {
      reporter.result(`Dry run: nothing was changed.\n\n${describeRunbookPlan(plan)}`, { ok: true, dryRun: true, plan: planJson(plan) });
      return 0;
    }
    await confirmChange(plan, { yes: flags.yes, dryRun: false, interactive: Boolean(process.stdin.isTTY), ask: confirmOnTerminal });
    return await perform(ctx, req, plan, facts, reporter);
  } catch (e) {
    if (isKubeError(e)) throw explainKubeError(e, `${req.action} on ${cluster.name}`, { context: target.context, kubeconfig: target.kubeconfig });
    throw e;
  }
});
