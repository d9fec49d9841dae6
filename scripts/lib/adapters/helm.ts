// The one client of the helm binary (3 or 4). It knows the binary, its major version and, for
// commands that talk to a cluster, the scope (kubeconfig, context, namespace). The argv builders are
// pure: plans and --dry-run show exactly what runs. The Helm 3/4 differences live here and nowhere
// else. Values that may hold secrets travel on stdin (`--values -`), never in argv.
import { usageError, UserError } from '../core/errors.ts';
import { CommandFailed, run, type RunOptions, type RunResult } from '../core/exec.ts';
import { redact } from '../core/redact.ts';

export type HelmMajor = 3 | 4;

/** Which Helm major a script uses: --helm flag, else CONDUIT_HELM_MAJOR, else 4. */
export function helmMajor(flag?: string): HelmMajor {
  const v = flag ?? process.env.CONDUIT_HELM_MAJOR ?? '4';
  if (v === '3' || v === '4') return Number(v) as HelmMajor;
  throw usageError(`--helm must be 3 or 4, not "${v}"`, 'Use --helm 3 or --helm 4 (or CONDUIT_HELM_MAJOR).');
}

/** The pinned tool (tools.ts) that is this Helm major. */
export function helmToolName(major: HelmMajor): string {
  return major === 3 ? 'helm3' : 'helm';
}

/** Where cluster-facing commands act. */
export interface HelmScope {
  context: string;
  kubeconfig?: string;
  namespace: string;
}

export interface RenderOptions {
  chart: string;
  release: string;
  /** The namespace rendered into; a scoped client defaults to its own. */
  namespace?: string;
  /** Values files, applied in order (later wins). */
  valuesFiles?: string[];
  /** A values document applied after the files, passed on stdin (template/lint write it there). */
  valuesYaml?: string;
  /** The caller passes a values document on stdin itself (plans): `--values -` after the files. */
  stdinValues?: boolean;
  /** --set key=value pairs, applied last. */
  set?: string[];
  /** Kubernetes version for .Capabilities (e.g. "1.35" or "v1.35.0"). */
  kubeVersion?: string;
  apiVersions?: string[];
  showOnly?: string[];
  /** Render against the scope's live cluster (`--dry-run=server`: `lookup` sees the real objects). */
  live?: boolean;
  /** Skip helm's own OpenAPI check (the caller validates more strictly). */
  skipOpenApiValidation?: boolean;
}

export type LintOptions = Pick<RenderOptions, 'chart' | 'namespace' | 'valuesFiles' | 'valuesYaml' | 'stdinValues' | 'set' | 'kubeVersion'> & {
  /** --strict (default true). */
  strict?: boolean;
};

export interface UpgradeOptions {
  release: string;
  chart: string;
  valuesFiles: string[];
  /** A values document follows the files on stdin (the overrides). */
  stdinValues: boolean;
  /** Go duration, e.g. 10m. */
  timeout: string;
  historyMax?: number;
  skipOpenApiValidation?: boolean;
}

export interface RollbackOptions {
  release: string;
  /** Default: the previous revision. */
  revision?: number;
  timeout: string;
  historyMax?: number;
  /** False: return once the rollback is recorded, with helm's own defaults (no wait, no conflict take-over). */
  wait?: boolean;
}

export interface PackageOptions {
  chart: string;
  destination: string;
  sign?: { key: string; keyring: string; passphraseFile?: string };
}

/** The path of the pinned helm binary of a major version (installed on demand). */
export function kubeVersionArg(v: string): string {
  const m = /^v?(\d+)\.(\d+)(?:\.(\d+))?$/.exec(v);
  if (!m) throw new UserError(`invalid Kubernetes version "${v}"`, { hint: 'Use MAJOR.MINOR, e.g. 1.35.', exitCode: 2 });
  return `v${m[1]}.${m[2]}.${m[3] ?? '0'}`;
}

/** The message of a `fail` in a template, without helm's prefix. */
export function templateFailure(stderr: string): string | undefined {
  const m = /execution error at \(([^)]*)\): ([\s\S]*)$/m.exec(stderr.trim());
  return m ? m[2].trim() : undefined;
}

function valuesArgs(o: { valuesFiles?: string[]; valuesYaml?: string; stdinValues?: boolean; set?: string[] }): string[] {
  const args = (o.valuesFiles ?? []).flatMap((f) => ['--values', f]);
  if (o.stdinValues || o.valuesYaml !== undefined) args.push('--values', '-');
  for (const s of o.set ?? []) args.push('--set', s);
  return args;
}

export class Helm {
  readonly binary: string;
  readonly major: HelmMajor;
  readonly scope?: HelmScope;

  constructor(binary: string, major: HelmMajor, scope?: HelmScope) {
    this.binary = binary;
    this.major = major;
    this.scope = scope;
  }

  withScope(scope: HelmScope): Helm {
    return new Helm(this.binary, this.major, scope);
  }

  /** `--kubeconfig? --kube-context --namespace` of the scope; none without one. */
  scopeArgs(): string[] {
    const s = this.scope;
    if (!s) return [];
    return [...(s.kubeconfig ? ['--kubeconfig', s.kubeconfig] : []), '--kube-context', s.context, '--namespace', s.namespace];
  }

  private requireScope(what: string): string[] {
    if (!this.scope) throw new Error(`helm ${what} needs a cluster scope (Helm.withScope)`);
    return this.scopeArgs();
  }

  private namespaceArgs(namespace: string | undefined): string[] {
    const ns = namespace ?? this.scope?.namespace;
    return ns === undefined ? [] : ['--namespace', ns];
  }

  // --- argv builders (pure) -------------------------------------------------------------------

  private installArgs(o: Pick<UpgradeOptions, 'release' | 'chart' | 'valuesFiles' | 'stdinValues'>): string[] {
    return ['upgrade', '--install', o.release, o.chart, ...this.requireScope('upgrade'), ...valuesArgs(o)];
  }

  /** `helm upgrade --install`, rolled back by helm when it fails, waiting for the rollout. */
  upgradeArgs(o: UpgradeOptions): string[] {
    return [
      ...this.installArgs(o),
      '--timeout',
      o.timeout,
      ...(o.historyMax !== undefined ? ['--history-max', String(o.historyMax)] : []),
      // Helm 4 names the rollback --rollback-on-failure and waits with its watcher; helm 3's --atomic
      // implies --wait. Helm 4 applies server-side: fields a runbook action patched with kubectl
      // (replicas, HPA bounds) belong to another field manager, and the upgrade takes them back
      // instead of failing on the conflict. Server-side is asked for explicitly: helm 4's default
      // (auto) follows the previous revision, and a release last applied client-side (by helm 3, or
      // --server-side=false) would refuse --force-conflicts.
      ...(this.major === 4 ? ['--rollback-on-failure', '--wait=watcher', '--server-side=true', '--force-conflicts'] : ['--atomic', '--wait']),
      ...(o.skipOpenApiValidation ? ['--disable-openapi-validation'] : []),
    ];
  }

  /** The same upgrade as a server-side dry run, printing the release (with its manifest) as JSON. */
  upgradeDryRunArgs(o: Pick<UpgradeOptions, 'release' | 'chart' | 'valuesFiles' | 'stdinValues'>): string[] {
    return [...this.installArgs(o), '--dry-run=server', '--output', 'json'];
  }

  rollbackArgs(o: RollbackOptions): string[] {
    // helm 4 applies server-side: fields changed by hand since (kubectl scale or edit) belong to another
    // field manager; a rollback restores the revision as it was, so it takes those fields back.
    const wait = o.wait === false ? [] : this.major === 4 ? ['--wait=watcher', '--force-conflicts'] : ['--wait'];
    return [
      'rollback',
      o.release,
      ...(o.revision ? [String(o.revision)] : []),
      ...this.scopeArgs(),
      '--timeout',
      o.timeout,
      ...wait,
      ...(o.historyMax !== undefined ? ['--history-max', String(o.historyMax)] : []),
    ];
  }

  uninstallArgs(o: { release: string; timeout?: string }): string[] {
    return ['uninstall', o.release, ...this.scopeArgs(), ...(o.timeout ? ['--timeout', o.timeout] : [])];
  }

  statusArgs(release: string): string[] {
    return ['status', release, ...this.scopeArgs(), '--output', 'json'];
  }

  historyArgs(release: string, max: number): string[] {
    return ['history', release, '--max', String(max), ...this.scopeArgs(), '--output', 'json'];
  }

  /** Every value of the deployed revision (chart defaults included). */
  valuesArgs(release: string): string[] {
    return ['get', 'values', release, '--all', ...this.scopeArgs(), '--output', 'json'];
  }

  templateArgs(o: RenderOptions): string[] {
    const where = o.live ? this.requireScope('template --dry-run=server') : this.namespaceArgs(o.namespace);
    const args = ['template', o.release, o.chart, ...where, ...valuesArgs(o)];
    if (o.kubeVersion) args.push('--kube-version', kubeVersionArg(o.kubeVersion));
    for (const a of o.apiVersions ?? []) args.push('--api-versions', a);
    for (const s of o.showOnly ?? []) args.push('--show-only', s);
    if (o.live) args.push('--dry-run=server');
    if (o.skipOpenApiValidation) args.push('--disable-openapi-validation');
    return args;
  }

  lintArgs(o: LintOptions): string[] {
    const args = ['lint', o.chart, ...this.namespaceArgs(o.namespace)];
    if (o.strict !== false) args.push('--strict');
    args.push(...valuesArgs(o));
    if (o.kubeVersion) args.push('--kube-version', kubeVersionArg(o.kubeVersion));
    return args;
  }

  packageArgs(o: PackageOptions): string[] {
    const sign = o.sign ? ['--sign', '--key', o.sign.key, '--keyring', o.sign.keyring, ...(o.sign.passphraseFile ? ['--passphrase-file', o.sign.passphraseFile] : [])] : [];
    return ['package', o.chart, '--destination', o.destination, ...sign];
  }

  verifyArgs(pkg: string, keyring: string): string[] {
    return ['verify', pkg, '--keyring', keyring];
  }

  repoIndexArgs(o: { dir: string; url: string; merge?: string }): string[] {
    return ['repo', 'index', o.dir, '--url', o.url, ...(o.merge ? ['--merge', o.merge] : [])];
  }

  pushArgs(o: { pkg: string; registry: string; plainHttp: boolean }): string[] {
    return ['push', o.pkg, o.registry, ...(o.plainHttp ? ['--plain-http'] : [])];
  }

  /**
   * How an upgrade's render goes through a post-renderer: helm 3 runs the executable itself; helm 4
   * only runs post-renderer plugins, found in `pluginsDir` (HELM_PLUGINS of that one helm process).
   */
  postRendererArgs(o: { executable: string; plugin: string; pluginsDir: string }): { args: string[]; env: Record<string, string> } {
    return this.major === 4 ? { args: ['--post-renderer', o.plugin], env: { HELM_PLUGINS: o.pluginsDir } } : { args: ['--post-renderer', o.executable], env: {} };
  }

  // --- running ----------------------------------------------------------------------------------

  run(args: string[], opts?: RunOptions): Promise<RunResult> {
    return run(this.binary, args, opts);
  }

  /** A read that prints JSON: undefined when helm says "not found", a UserError (stderr redacted) on any other failure. */
  async json<T>(args: string[]): Promise<T | undefined> {
    const r = await this.run(args, { timeoutMs: 120_000 });
    if (r.exitCode !== 0) {
      if (/not found/i.test(r.stderr)) return undefined;
      throw new UserError(`helm ${args[0]} failed: ${redact(r.stderr.trim())}`);
    }
    return JSON.parse(r.stdout) as T;
  }

  status<T>(release: string): Promise<T | undefined> {
    return this.json<T>(this.statusArgs(release));
  }

  history<T>(release: string, max: number): Promise<T | undefined> {
    return this.json<T>(this.historyArgs(release, max));
  }

  values<T>(release: string): Promise<T | undefined> {
    return this.json<T>(this.valuesArgs(release));
  }

  /** `helm template`; the result whatever the exit code (callers decide). */
  template(o: RenderOptions, opts: RunOptions = {}): Promise<RunResult> {
    return this.run(this.templateArgs(o), { ...opts, input: o.valuesYaml ?? opts.input });
  }

  /** `helm template` that throws CommandFailed on a non-zero exit. */
  async render(o: RenderOptions): Promise<string> {
    const r = await this.template(o);
    if (r.exitCode !== 0) throw new CommandFailed(r);
    return r.stdout;
  }

  lint(o: LintOptions, opts: RunOptions = {}): Promise<RunResult> {
    return this.run(this.lintArgs(o), { ...opts, input: o.valuesYaml ?? opts.input });
  }
}
