// Every PromQL query of the project uses only metrics that are really served (catalogued, with
// their exporter) or recorded by our own rules, and only labels those metrics carry.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import YAML from 'yaml';
import {
  allQueries,
  unusedMetrics,
  chartMetricNames,
  checkAllQueries,
  checkAutoscalingMetrics,
  checkContext,
  checkQuery,
  dashboardQueries,
  leValues,
  loadCatalog,
  seriesIndex,
  variableQueryExpr,
  type Query,
} from '../../scripts/lib/domain/catalog.ts';
import { loadRules } from '../../scripts/lib/domain/rules.ts';

const catalog = loadCatalog();
const ctx = checkContext(catalog, loadRules());
const q = (promql: string, alert?: Query['alert']): string[] => checkQuery({ file: 'x', where: 'y', expr: promql, promql, alert }, ctx);

test('the catalog validates and names its app version and every exporter', () => {
  assert.ok(catalog.app.version);
  const kinds = new Set(Object.values(catalog.sources).map((s) => s.kind));
  assert.ok(kinds.has('app') && kinds.has('exporter'));
  for (const m of catalog.metrics) assert.ok(catalog.sources[m.source], m.name);
});

test('the catalog is taken from the app version the chart deploys', () => {
  for (const src of Object.values(catalog.sources)) if (src.kind === 'app') assert.is(src.appVersion, catalog.app.version);
  const chart = 'chart/Chart.yaml';
  if (fs.existsSync(chart))
    assert.is(
      String(YAML.parse(fs.readFileSync(chart, 'utf8')).appVersion),
      catalog.app.version,
      'catalog app.version must equal the chart appVersion (re-check the metrics when the app version changes)',
    );
});

test('no conduit_* metric is catalogued: the app does not serve them at this version', () => {
  assert.equal(
    catalog.metrics.filter((m) => m.name.startsWith('conduit_')).map((m) => m.name),
    [],
  );
});

test('every query of dashboards/, alerts/ and chart/ passes the catalog check', () => {
  const r = checkAllQueries(catalog);
  assert.ok(r.queries >= 60, `only ${r.queries} queries found`);
  assert.equal(r.problems, []);
});

test('every catalogued metric is used by a query, a rule or the autoscaler', () => {
  assert.equal(unusedMetrics(catalog), []);
});

test('the queries come from rules and dashboards', () => {
  const files = new Set(allQueries().map((x) => x.file.split('/')[0]));
  assert.ok(files.has('alerts'));
  assert.ok(files.has('dashboards'));
});

test('an unexported metric is rejected, with the reason for conduit_*', () => {
  const p = q('sum(rate(conduit_llm_requests_total[5m]))');
  assert.is(p.length, 1);
  assert.match(p[0], /conduit_llm_requests_total is neither in the metric catalog.*not serve/);
  assert.match(q('rate(made_up_total[5m])')[0], /made_up_total/);
});

test('a label the metric does not have is rejected; target labels are allowed', () => {
  assert.match(q('rate(http_server_request_duration_seconds_count{provider="x"}[5m])')[0], /label provider is not a label of http_server_request_duration_seconds_count/);
  assert.equal(q('rate(http_server_request_duration_seconds_count{job="a", namespace="b", http_route="/v1/models"}[5m])'), []);
  assert.match(q('redis_up{le="1"}')[0], /label le/);
  assert.equal(q('http_server_request_duration_seconds_bucket{le="10"}'), []);
});

test('le must be a real bucket boundary of the histogram', () => {
  assert.equal(q('http_server_request_duration_seconds_bucket{le=~"10|10\\\\.0"}'), []);
  assert.match(q('http_server_request_duration_seconds_bucket{le="3"}')[0], /not a bucket boundary/);
  assert.equal(leValues('7.5|7\\.5', '=~'), [7.5, 7.5]);
  assert.is(leValues('.*', '=~'), undefined);
});

test('recorded series are known with their inferred labels', () => {
  assert.equal(q('slo:sli_error:ratio_rate1h{slo="conduit-api-availability", namespace="a", job="b"}'), []);
  assert.match(q('slo:sli_error:ratio_rate1h{instance="a"}')[0], /label instance is not a label of slo:sli_error:ratio_rate1h/);
  assert.equal([...ctx.recorded.get('slo:error_budget_remaining:ratio')!].sort(), ['job', 'namespace', 'slo']);
});

test('alert annotations may only use labels the alert carries', () => {
  const annotations = { description: '{{ $labels.job }} {{ $labels.pod }}' };
  assert.match(q('sum by (job) (up) == 0', { annotations, labels: {} })[0], /\$labels.pod/);
  assert.equal(q('sum by (job, pod) (up) == 0', { annotations, labels: {} }), []);
});

test('grouping by a label the input lacks is rejected', () => {
  assert.match(q('sum by (server_address) (rate(http_server_request_duration_seconds_count[5m]))')[0], /by\(server_address\)/);
});

test('dashboard targets and variable queries are collected with variables substituted', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dash-q-'));
  const f = path.join(dir, 'd.json');
  fs.writeFileSync(
    f,
    JSON.stringify({
      panels: [{ title: 'Row', type: 'row', panels: [{ title: 'P', type: 'timeseries', targets: [{ refId: 'A', expr: 'sum(rate(up{job=~"$job"}[$__rate_interval]))' }] }] }],
      templating: { list: [{ name: 'job', type: 'query', query: { query: 'label_values(up{namespace=~"$namespace"}, job)' } }] },
    }),
  );
  const qs = dashboardQueries(f);
  assert.equal(
    qs.map((x) => x.promql),
    ['sum(rate(up{job=~".+"}[5m]))', 'up{namespace=~".+"}'],
  );
  assert.is(variableQueryExpr('label_values(job)'), undefined);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('autoscaling metrics named in chart/values.yaml must be catalogued gauges', () => {
  assert.equal(checkAutoscalingMetrics(catalog), []);
  assert.equal(checkAutoscalingMetrics(catalog, [{ path: 'api.autoscaling.metricName', metric: 'http_server_active_requests' }]), []);
  assert.match(checkAutoscalingMetrics(catalog, [{ path: 'a', metric: 'conduit_active_requests' }])[0], /not in the metric catalog/);
  assert.match(checkAutoscalingMetrics(catalog, [{ path: 'a', metric: 'aspnetcore_rate_limiting_requests_total' }])[0], /must be a gauge/);
  assert.match(checkAutoscalingMetrics(catalog, [{ path: 'webui.autoscaling.pods.metricName', metric: 'http_server_active_requests' }])[0], /webui pods do not serve/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'values-'));
  const f = path.join(dir, 'values.yaml');
  fs.writeFileSync(f, 'api:\n  autoscaling:\n    pods:\n      metricName: http_server_active_requests\nadmin:\n  hpa: [{metricName: x}]\nwebui:\n  pods: {enabled: false, metricName: y}\n');
  // Switched-off blocks count too (their default must be right once switched on); empty names do not.
  fs.appendFileSync(f, 'other:\n  metricName: ""\n');
  assert.equal(chartMetricNames(f), [
    { path: 'api.autoscaling.pods.metricName', metric: 'http_server_active_requests' },
    { path: 'admin.hpa[0].metricName', metric: 'x' },
    { path: 'webui.pods.metricName', metric: 'y' },
  ]);
  // The chart's own defaults: API and Admin scale on a metric they serve, the WebUI names none.
  assert.equal(
    chartMetricNames().map((r) => r.path),
    ['api.autoscaling.pods.metricName', 'admin.autoscaling.pods.metricName'],
  );
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a broken catalog is reported with the offending entry', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cat-'));
  const f = path.join(dir, 'c.yaml');
  const doc = YAML.parse(fs.readFileSync('schemas/metric-catalog.yaml', 'utf8'));
  doc.metrics.push({ name: 'x_total', type: 'counter', source: 'nowhere', help: 'x', labels: [] });
  doc.metrics.push({ name: 'bad-name', type: 'gauge', source: 'prometheus', help: 'x', labels: [] });
  fs.writeFileSync(f, YAML.stringify(doc));
  assert.throws(() => loadCatalog(f), /name must match pattern/);
  doc.metrics.pop();
  fs.writeFileSync(f, YAML.stringify(doc));
  assert.throws(() => loadCatalog(f), /source "nowhere" is not defined/);
  fs.rmSync(dir, { recursive: true, force: true });
  assert.ok(seriesIndex(catalog).has('http_server_request_duration_seconds_bucket'));
});

test.run();
