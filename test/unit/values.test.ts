import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { run } from '../../scripts/lib/core/exec.ts';
import { tool } from '../../scripts/lib/adapters/tools.ts';
import { formatPath, formatPos, locate, mergeValueLayers, parseSetFlags, parseValuesText, prepareValues, typedSetValue } from '../../scripts/lib/domain/values.ts';

const test = suite('values');

const DEFAULTS = `a: 1
m:
  x: 1
  y: [1, 2]
  z: {q: 1}
n: null
list: [a, b, c]
`;
const F1 = `m:
  x: null
  w: null
k: null
list: [z]
`;
const F2 = `m:
  y: null
  z:
    r: 2
k2: {a: null}
`;

test('maps merge, lists replace, a null deletes a chart default and stays null otherwise', () => {
  const merged = mergeValueLayers(parseValuesText(DEFAULTS, 'values.yaml'), [parseValuesText(F1, 'f1.yaml'), parseValuesText(F2, 'f2.yaml')]);
  // `n:` is the boolean false in YAML 1.1, so the chart's key is "false".
  assert.equal(merged.values, { a: 1, m: { w: null, z: { q: 1, r: 2 } }, false: null, list: ['z'], k: null, k2: { a: null } });
});

test('the source of a key is the last layer that set it, with line and column', () => {
  const merged = mergeValueLayers(parseValuesText(DEFAULTS, 'values.yaml'), [parseValuesText(F1, 'f1.yaml'), parseValuesText(F2, 'f2.yaml')]);
  assert.is(formatPos(locate(merged, ['m', 'z', 'r'])!.pos), 'f2.yaml:4:5');
  assert.is(formatPos(locate(merged, ['m', 'z', 'q'])!.pos), 'values.yaml:5:7');
  assert.is(formatPos(locate(merged, ['list'])!.pos), 'f1.yaml:5:1');
  // A list item points into the layer whose list won, not into the defaults' old list.
  assert.is(formatPos(locate(merged, ['list', 0])!.pos), 'f1.yaml:5:8');
  assert.is(locate(merged, ['list', 2])!.exact, false);
  assert.is(formatPos(locate(merged, ['a'])!.pos), 'values.yaml:1:1');
});

test('YAML 1.1 as Helm reads it: yes/on/no are booleans (warned), octal, no timestamps', () => {
  const l = parseValuesText('a: yes\nb: "yes"\nc: off\nd: 0755\ne: 2024-01-01\nf: 1_000\non: 1\n', 'x.yaml');
  assert.equal(l.values, { a: true, b: 'yes', c: false, d: 493, e: '2024-01-01', f: 1000, true: 1 });
  const w = l.warnings.map((x) => `${formatPos(x.at)} ${x.path}`);
  assert.equal(w, ['x.yaml:1:4 a', 'x.yaml:3:4 c', 'x.yaml:7:1 true']);
  assert.match(l.warnings[0].message, /boolean true/);
});

test('syntax errors and duplicate keys name the file, line and column', () => {
  assert.throws(() => parseValuesText('a: 1\nb: [1, 2\n', 'bad.yaml'), /bad\.yaml:\d+:\d+: invalid YAML/);
  assert.throws(() => parseValuesText('a: 1\na: 2\n', 'dup.yaml'), /dup\.yaml:2:1: invalid YAML/);
});

test('--set types values like Helm: ints, booleans, null; 007 and 1.5 stay strings', () => {
  assert.is(typedSetValue('42'), 42);
  assert.is(typedSetValue('0'), 0);
  assert.is(typedSetValue('007'), '007');
  assert.is(typedSetValue('1.5'), '1.5');
  assert.is(typedSetValue('TRUE'), true);
  assert.is(typedSetValue('null'), null);
  const a = parseSetFlags(['a.b=1,c=x\\,y', 'l={1,two}', 'm[1].n=v', 'dots\\.in\\.key=1']);
  assert.equal(
    a.map((x) => [formatPath(x.path), x.value]),
    [
      ['a.b', 1],
      ['c', 'x,y'],
      ['l', [1, 'two']],
      ['m[1].n', 'v'],
      ['["dots.in.key"]', 1],
    ],
  );
  assert.throws(() => parseSetFlags(['novalue']), /has no value/);
  assert.throws(() => parseSetFlags(['a[x]=1']), /not a number/);
  assert.throws(() => parseSetFlags(['a[1=1']), /unclosed \[/);
  assert.throws(() => parseSetFlags(['[0]=1']), /cannot start with an index/);
  assert.throws(() => parseSetFlags(['a..b=1']), /empty key segment/);
  assert.throws(() => parseSetFlags(['=1']), /empty key/);
  assert.throws(() => parseSetFlags(['l={a,b']), /unclosed \{/);
  assert.throws(() => parseSetFlags(['l={a}x']), /unexpected "x" after a list value/);
  assert.throws(() => parseSetFlags(['a=1,b']), /key "b" has no value/);
  assert.equal(
    parseSetFlags(['l={},m={a,}', 'a[2]b=1']).map((x) => [formatPath(x.path), x.value, x.text, x.flag]),
    [
      ['l', [], 'l={}', 0],
      ['m', ['a'], 'm={a,}', 0],
      ['a[2].b', 1, 'a[2]b=1', 1],
    ],
  );
});

test('--set values reach helm on stdin, whole lists included', () => {
  const layers = [parseValuesText('l: [a, b, c]\n', 'f.yaml')];
  const sets = parseSetFlags(['l[1]=B', 'x.y=2']);
  const prepared = prepareValues(parseValuesText('', 'values.yaml'), ['f.yaml'], sets, layers);
  assert.equal(prepared.overrides, { l: ['a', 'B', 'c'], x: { y: 2 } });
  assert.equal(JSON.parse(prepared.helm.stdin ?? ''), prepared.overrides);
  assert.equal(prepared.merged.user, { l: ['a', 'B', 'c'], x: { y: 2 } });
  assert.is(prepareValues(parseValuesText('', 'values.yaml'), ['f.yaml'], [], layers).helm.stdin, undefined, 'no --set: nothing on stdin');
});

// The real check: Helm itself renders `.Values` for the same layers and --set flags.
test('the merge equals what helm template sees (real helm)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'values-test-'));
  try {
    fs.mkdirSync(path.join(dir, 'c', 'templates'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'c', 'Chart.yaml'), 'apiVersion: v2\nname: t\nversion: 0.1.0\n');
    fs.writeFileSync(path.join(dir, 'c', 'values.yaml'), DEFAULTS);
    fs.writeFileSync(path.join(dir, 'c', 'templates', 'v.txt'), '{{ toJson .Values }}\n');
    const f3 = 'n: {p: 1}\nflag: on\noct: 0755\nts: 2024-01-01\n';
    for (const [n, t] of [
      ['f1.yaml', F1],
      ['f2.yaml', F2],
      ['f3.yaml', f3],
    ])
      fs.writeFileSync(path.join(dir, n), t);
    const setFlags = ['s=null,t=007,u=1.5,v=true,big=12345', 'list[1]=x', 'esc=a\\,b', 'm.z.q=0', 'a=null'];
    const helm = await tool('helm');
    const r = await run(helm, ['template', 'r', path.join(dir, 'c'), ...['f1.yaml', 'f2.yaml', 'f3.yaml'].flatMap((f) => ['-f', path.join(dir, f)]), ...setFlags.flatMap((s) => ['--set', s])]);
    assert.is(r.exitCode, 0, r.stderr);
    const fromHelm = JSON.parse(r.stdout.split('\n').find((l) => l.startsWith('{'))!);
    const layers = ['f1.yaml', 'f2.yaml', 'f3.yaml'].map((f) => parseValuesText(fs.readFileSync(path.join(dir, f), 'utf8'), f));
    const ours = mergeValueLayers(parseValuesText(DEFAULTS, 'values.yaml'), layers, parseSetFlags(setFlags));
    assert.equal(ours.values, fromHelm);
    // The same through the stdin document (what validation passes instead of --set).
    const stdin = prepareValues(parseValuesText(DEFAULTS, 'values.yaml'), [], parseSetFlags(setFlags), layers).helm.stdin;
    const r2 = await run(helm, ['template', 'r', path.join(dir, 'c'), ...['f1.yaml', 'f2.yaml', 'f3.yaml'].flatMap((f) => ['-f', path.join(dir, f)]), '-f', '-'], { input: stdin });
    assert.is(r2.exitCode, 0, r2.stderr);
    assert.equal(JSON.parse(r2.stdout.split('\n').find((l) => l.startsWith('{'))!), fromHelm);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
