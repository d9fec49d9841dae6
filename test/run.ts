// Test runner: loads every *.test.ts of the named suites (unit, chart, e2e) into one uvu run and
// ends with the line `N passed, N failed` (plus skipped) that CI reads.
// Usage: node --import tsx test/run.ts [suite...] [--filter SUBSTRING]
import fs from 'node:fs';
import { register } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const fi = args.indexOf('--filter');
const filter = fi >= 0 ? args[fi + 1] : process.env.TEST_FILTER;
const suites = args.filter((a, i) => !a.startsWith('--') && !(fi >= 0 && i === fi + 1));

function testFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? testFiles(path.join(dir, e.name)) : e.name.endsWith('.test.ts') ? [path.join(dir, e.name)] : []))
    .sort();
}

const files = (suites.length ? suites : ['unit', 'chart']).flatMap((s) => testFiles(path.join(here, s))).filter((f) => !filter || f.includes(filter));

// uvu: defer execution until every file has registered its suites, then run them all at once.
const g = globalThis as unknown as { UVU_DEFER: number; UVU_QUEUE: unknown[][]; UVU_INDEX: number };
g.UVU_DEFER = 1;
g.UVU_QUEUE = [];
// Errors of `before` hooks must be reported, not swallowed (see support/uvu-hooks.mjs).
register('./support/uvu-hooks.mjs', import.meta.url);
const { exec } = await import('uvu');
for (const [i, file] of files.entries()) {
  g.UVU_INDEX = i;
  g.UVU_QUEUE.push([path.relative(here, file)]);
  await import(pathToFileURL(file).href);
}

// Capture uvu's summary to print the closing line in the form CI reads.
let captured = '';
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
  captured += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
  return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
}) as typeof process.stdout.write;
await exec(false);
process.stdout.write = write;
const plain = captured.replace(/\x1b\[[0-9;]*m/g, '');
const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? 0);
const passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? 0);
const skipped = Number(/Skipped:\s+(\d+)/.exec(plain)?.[1] ?? 0);
const failed = total - passed - skipped;
console.log(`\n${passed} passed, ${failed} failed, ${skipped} skipped`);
if (files.length === 0 || total === 0) {
  console.error('no test ran');
  process.exitCode = 1;
} else if (failed > 0) process.exitCode = 1;
