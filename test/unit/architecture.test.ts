// The layers of scripts/ (docs/architecture.md), enforced: who may import whom, no cycles, at most six
// levels from a verb down to the primitives, and no function over 80 lines (each nested function
// measured on its own). Measured with the TypeScript parser (test/support/codeshape.ts).
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { functionLengths, importLevels, importsOf, REPO, sourceFiles } from '../support/codeshape.ts';

type Layer = 'verb' | 'engine' | 'domain' | 'adapter' | 'core';
const RANK: Record<Layer, number> = { verb: 5, engine: 4, domain: 3, adapter: 2, core: 1 };

/** The layer of a module, from where it lives. */
export function layerOf(file: string): Layer {
  const rel = path.relative(REPO, file).split(path.sep).join('/');
  const m = /^scripts\/lib\/(engines|domain|adapters|core)\//.exec(rel);
  if (m) return ({ engines: 'engine', domain: 'domain', adapters: 'adapter', core: 'core' } as const)[m[1] as 'engines'];
  if (/^scripts\/[^/]+\.ts$/.test(rel) || rel.startsWith('bench/')) return 'verb';
  throw new Error(`${rel} is in no layer: put it under scripts/lib/{engines,domain,adapters,core}/`);
}

/** The verb an engine module belongs to: engines/backup-cluster.ts belongs to backup. */
const engineVerb = (file: string) => path.basename(file, '.ts').split('-')[0];

/** Why an import breaks the layer rules, or undefined when it is allowed. */
export function importViolation(from: string, to: string): string | undefined {
  const a = layerOf(from);
  const b = layerOf(to);
  const inBench = (f: string) => path.relative(REPO, f).startsWith('bench' + path.sep);
  // The benchmarks share their runner (bench/run.ts); nothing else imports an entry script.
  if (b === 'verb') return inBench(from) && inBench(to) ? undefined : 'imports an entry script';
  if (RANK[b] > RANK[a]) return `a ${a} module imports a ${b} module`;
  if (a === 'engine' && b === 'engine' && engineVerb(from) !== engineVerb(to)) return 'an engine imports another engine';
  return undefined;
}

const files = sourceFiles();
const rel = (f: string) => path.relative(REPO, f);

test('every module of scripts/ and bench/ sits in a layer', () => {
  for (const f of files) layerOf(f);
});

test('imports go down the layers: no engine imports another engine, no lib module imports a verb', () => {
  const inScope = new Set(files);
  // Benchmarks may use test fixtures (test/): outside the layers, not part of the product.
  const bad = files.flatMap((f) =>
    importsOf(f)
      .filter((e) => inScope.has(e.to))
      .flatMap((e) => {
        const why = importViolation(e.from, e.to);
        return why ? [`${rel(e.from)} -> ${rel(e.to)}: ${why}`] : [];
      }),
  );
  assert.equal(bad, []);
});

test('the rules can fail: an engine importing another engine, or core importing an adapter, is caught', () => {
  const lib = path.join(REPO, 'scripts', 'lib');
  assert.is(importViolation(path.join(lib, 'engines', 'runbook.ts'), path.join(lib, 'engines', 'deploy.ts')), 'an engine imports another engine');
  assert.is(importViolation(path.join(lib, 'engines', 'backup-cluster.ts'), path.join(lib, 'engines', 'backup.ts')), undefined);
  assert.is(importViolation(path.join(lib, 'core', 'exec.ts'), path.join(lib, 'adapters', 'kube.ts')), 'a core module imports a adapter module');
  assert.is(importViolation(path.join(lib, 'domain', 'audit.ts'), path.join(REPO, 'scripts', 'deploy.ts')), 'imports an entry script');
  assert.is(importViolation(path.join(REPO, 'scripts', 'backup.ts'), path.join(REPO, 'scripts', 'deploy.ts')), 'imports an entry script');
});

test('the import graph has no cycle and at most six levels (verb at the top, primitives at the bottom)', () => {
  const { levels, chains, cycles } = importLevels(files);
  assert.equal(
    cycles.map((c) => c.map(rel).join(' -> ')),
    [],
  );
  const [deepest] = [...levels.entries()].sort((a, b) => b[1] - a[1]);
  assert.ok(deepest[1] <= 6, `${deepest[1]} levels: ${chains.get(deepest[0])!.map(rel).join(' -> ')}`);
});

test('no function under scripts/ is longer than 80 lines', () => {
  const long = files
    .filter((f) => f.startsWith(path.join(REPO, 'scripts')))
    .flatMap(functionLengths)
    .filter((f) => f.lines > 80);
  assert.equal(
    long.map((f) => `${f.file}:${f.line} ${f.name} (${f.lines} lines)`),
    [],
  );
});

test.run();
