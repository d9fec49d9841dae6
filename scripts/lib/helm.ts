// Typed access to the helm binary (3 or 4). Values that may hold secrets travel on stdin (`-f -`),
// never in argv.
import { UserError } from './errors.ts';
import { CommandFailed, run, type RunResult } from './exec.ts';
import { helmToolName, tool, type HelmMajor } from './tools.ts';

export async function helmBinary(major: HelmMajor): Promise<string> {
  return tool(helmToolName(major));
}

export interface RenderOptions {
  chart: string;
  release: string;
  namespace: string;
  major: HelmMajor;
  /** Values files, applied in order (later wins). */
  valuesFiles?: string[];
  /** A values document applied after the files, passed on stdin. */
  valuesYaml?: string;
  /** --set key=value pairs, applied last. */
  set?: string[];
  /** Kubernetes version for .Capabilities (e.g. "1.35" or "v1.35.0"). */
  kubeVersion?: string;
  apiVersions?: string[];
  /** Also render hooks/tests (helm template includes them by default). */
  showOnly?: string[];
}

export function kubeVersionArg(v: string): string {
  const m = /^v?(\d+)\.(\d+)(?:\.(\d+))?$/.exec(v);
  if (!m) throw new UserError(`invalid Kubernetes version "${v}"`, { hint: 'Use MAJOR.MINOR, e.g. 1.35.', exitCode: 2 });
  return `v${m[1]}.${m[2]}.${m[3] ?? '0'}`;
}

export function templateArgs(o: RenderOptions): string[] {
  const args = ['template', o.release, o.chart, '--namespace', o.namespace];
  for (const f of o.valuesFiles ?? []) args.push('--values', f);
  if (o.valuesYaml !== undefined) args.push('--values', '-');
  for (const s of o.set ?? []) args.push('--set', s);
  if (o.kubeVersion) args.push('--kube-version', kubeVersionArg(o.kubeVersion));
  for (const a of o.apiVersions ?? []) args.push('--api-versions', a);
  for (const s of o.showOnly ?? []) args.push('--show-only', s);
  return args;
}

/** `helm template`; returns the result whatever the exit code (callers decide). */
export async function template(o: RenderOptions): Promise<RunResult> {
  return run(await helmBinary(o.major), templateArgs(o), { input: o.valuesYaml });
}

/** `helm template` that throws CommandFailed on a non-zero exit. */
export async function render(o: RenderOptions): Promise<string> {
  const r = await template(o);
  if (r.exitCode !== 0) throw new CommandFailed(r);
  return r.stdout;
}

export async function lint(o: Omit<RenderOptions, 'release' | 'showOnly' | 'apiVersions'> & { strict?: boolean }): Promise<RunResult> {
  const args = ['lint', o.chart, '--namespace', o.namespace];
  if (o.strict !== false) args.push('--strict');
  for (const f of o.valuesFiles ?? []) args.push('--values', f);
  if (o.valuesYaml !== undefined) args.push('--values', '-');
  for (const s of o.set ?? []) args.push('--set', s);
  if (o.kubeVersion) args.push('--kube-version', kubeVersionArg(o.kubeVersion));
  return run(await helmBinary(o.major), args, { input: o.valuesYaml });
}

/** The `{{ .Values }}`-style failure message of a `fail` in a template, without helm's prefix. */
export function templateFailure(stderr: string): string | undefined {
  const m = /execution error at \(([^)]*)\): ([\s\S]*)$/m.exec(stderr.trim());
  return m ? m[2].trim() : undefined;
}
