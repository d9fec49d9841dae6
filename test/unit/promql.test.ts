import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { expandGrafanaVariables, inferLabels, parsePromQL, templateLabelRefs, unquote } from '../../scripts/lib/domain/promql.ts';

const labels: Record<string, string[]> = {
  a_total: ['job', 'instance', 'code', 'route'],
  b: ['job', 'instance', 'x'],
  h_bucket: ['job', 'le', 'route'],
};
const lookup = (m: string) => (labels[m] ? new Set(labels[m]) : undefined);
const out = (expr: string) => {
  const inf = inferLabels(parsePromQL(expr), lookup);
  return { labels: inf.labels ? [...inf.labels].sort() : undefined, problems: inf.problems };
};

test('selectors, matchers, ranges and the enclosing function are extracted', () => {
  const p = parsePromQL('sum by (job) (rate(a_total{code=~"5..", route!="/health"}[5m])) / ignoring(x) b{"x"="y"}');
  assert.equal(p.errors, []);
  assert.is(p.selectors.length, 2);
  assert.is(p.selectors[0].metric, 'a_total');
  assert.equal(p.selectors[0].matchers, [
    { label: 'code', op: '=~', value: '5..' },
    { label: 'route', op: '!=', value: '/health' },
  ]);
  assert.is(p.selectors[0].range, '5m');
  assert.is(p.selectors[0].enclosingFunction, 'rate');
  assert.equal(p.selectors[1].matchers, [{ label: 'x', op: '=', value: 'y' }]);
  assert.equal(p.groupingLabels, ['job', 'x']);
  assert.equal(p.functions, ['rate']);
});

test('syntax errors are reported with a position', () => {
  const p = parsePromQL('sum(rate(a_total[5m]) foo');
  assert.ok(p.errors.length > 0);
  assert.match(p.errors[0], /1:\d+/);
  assert.ok(parsePromQL('').errors.length === 1);
});

test('{__name__="x"} and quoted metric names count as the metric', () => {
  assert.is(parsePromQL('{__name__="b", x="1"}').selectors[0].metric, 'b');
  assert.is(parsePromQL('{"b", x="1"}').selectors[0].metric, 'b');
});

test('label inference follows aggregation and vector matching rules', () => {
  assert.equal(out('sum by (job, code) (rate(a_total[5m]))').labels, ['code', 'job']);
  assert.equal(out('sum without (instance) (a_total)').labels, ['code', 'job', 'route']);
  assert.equal(out('sum(a_total)').labels, []);
  assert.equal(out('a_total / on (job) b').labels, ['job']);
  assert.equal(out('a_total / ignoring (code, route) b').labels, ['instance', 'job']);
  assert.equal(out('a_total * on (job) group_left (x) b').labels, ['code', 'instance', 'job', 'route', 'x']);
  assert.equal(out('a_total and on (job) b').labels, ['code', 'instance', 'job', 'route']);
  assert.equal(out('histogram_quantile(0.99, sum by (le, route) (rate(h_bucket[5m])))').labels, ['route']);
  assert.equal(out('label_replace(b, "y", "$1", "x", "(.*)")').labels, ['instance', 'job', 'x', 'y']);
  assert.equal(out('absent(b{job="api", x=~"a.*"})').labels, ['job']);
  assert.equal(out('vector(1)').labels, []);
  assert.equal(out('2 * b > 3').labels, ['instance', 'job', 'x']);
  assert.equal(out('topk(3, b)').labels, ['instance', 'job', 'x']);
  assert.is(out('unknown_metric + 1').labels, undefined);
});

test('grouping by a label the input lacks is a problem', () => {
  assert.match(out('sum by (nope) (b)').problems[0], /by\(nope\).*no label "nope"/);
  assert.match(out('sum by (job) (b) / on (x) sum by (job) (b)').problems[0], /on\(x\)/);
  assert.equal(out('sum by (job) (b) / on (job) sum by (job, x) (b)').problems, []);
});

test('Grafana variables become durations outside strings and .+ inside them', () => {
  assert.is(expandGrafanaVariables('rate(a_total{job=~"$job", instance=~"${instance:regex}"}[$__rate_interval])'), 'rate(a_total{job=~".+", instance=~".+"}[5m])');
  assert.is(expandGrafanaVariables('increase(b[$__range]) > $threshold'), 'increase(b[6h]) > 1');
  assert.is(expandGrafanaVariables('b{job="$job"}', { job: 'api' }), 'b{job="api"}');
  assert.equal(parsePromQL(expandGrafanaVariables('sum(rate(a_total{job=~"$job"}[$__rate_interval]))')).errors, []);
});

test('string literals are unquoted like Go', () => {
  assert.is(unquote('"a\\\\.b"'), 'a\\.b');
  assert.is(unquote("'it\\'s'"), "it's");
  assert.is(unquote('`raw\\n`'), 'raw\\n');
});

test('alert templates: $labels references are found', () => {
  assert.equal(templateLabelRefs('{{ $labels.job }} and {{ $labels.namespace }} {{ $value }} {{ index $labels "pod" }}'), ['job', 'namespace', 'pod']);
});

test.run();
