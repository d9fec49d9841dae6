// CustomResourceDefinitions of the operators the chart targets, at pinned versions, taken from the
// operators' Go modules (the module zip carries the repository tree). Used to validate rendered
// custom resources offline and to install the CRDs into the local cluster.
import fs from 'node:fs';
import path from 'node:path';
import { toolError } from '../core/errors.ts';
import { run } from '../core/exec.ts';
import { REPO_ROOT } from '../core/paths.ts';

export interface CrdSource {
  name: string;
  module: string;
  version: string;
  /** Directory inside the module holding one CRD manifest per file. */
  dir: string;
  /** Only files whose name matches (all .yaml files when absent). */
  match?: RegExp;
}

export const CRD_SOURCES: readonly CrdSource[] = [
  { name: 'cloudnative-pg', module: 'github.com/cloudnative-pg/cloudnative-pg', version: 'v1.29.0', dir: 'config/crd/bases' },
  { name: 'prometheus-operator', module: 'github.com/prometheus-operator/prometheus-operator', version: 'v0.89.0', dir: 'example/prometheus-operator-crd' },
  { name: 'rabbitmq-cluster-operator', module: 'github.com/rabbitmq/cluster-operator/v2', version: 'v2.19.0', dir: 'config/crd/bases' },
  { name: 'gateway-api', module: 'sigs.k8s.io/gateway-api', version: 'v1.6.3', dir: 'config/crd/standard' },
];

const moduleDirs = new Map<string, Promise<string>>();

/** The unpacked module directory (downloaded once into the Go module cache). */
export function moduleDir(module: string, version: string): Promise<string> {
  const key = `${module}@${version}`;
  let p = moduleDirs.get(key);
  if (!p) {
    p = (async () => {
      // Run inside tools/go/crds, whose go.sum pins the modules' checksums: the download is verified
      // against it rather than a checksum-database lookup (which does not know every version).
      const r = await run(process.env.CONDUIT_GO ?? 'go', ['mod', 'download', '-json', key], {
        cwd: path.join(REPO_ROOT, 'tools', 'go', 'crds'),
        env: { GOFLAGS: '-mod=mod' },
        timeoutMs: 10 * 60_000,
      });
      let info: { Dir?: string; Error?: string } = {};
      try {
        info = JSON.parse(r.stdout);
      } catch {
        /* reported below */
      }
      if (r.exitCode !== 0 || !info.Dir) {
        throw toolError(`cannot download ${key} from the Go module proxy: ${info.Error ?? r.stderr.trim()}`, 'Check that Go is installed and the Go module proxy is reachable (GOPROXY).');
      }
      return info.Dir;
    })();
    moduleDirs.set(key, p);
  }
  return p;
}

/** Absolute paths of every CRD manifest of one source. */
export async function crdFiles(source: CrdSource): Promise<string[]> {
  const dir = path.join(await moduleDir(source.module, source.version), source.dir);
  if (!fs.existsSync(dir)) throw toolError(`${source.module}@${source.version} has no ${source.dir}`, 'The pinned CRD source moved: update CRD_SOURCES in scripts/lib/adapters/crds.ts.');
  return fs
    .readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f) && (!source.match || source.match.test(f)) && !/kustomization/.test(f))
    .sort()
    .map((f) => path.join(dir, f));
}

export async function allCrdFiles(): Promise<string[]> {
  return (await Promise.all(CRD_SOURCES.map(crdFiles))).flat();
}
