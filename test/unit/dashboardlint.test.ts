// The reimplemented dashboard-linter rules, each shown to pass a good dashboard and to catch the
// fault it is named after.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { applyConfig, lintDashboard, RULES, type Dashboard } from '../../scripts/lib/domain/dashboardlint.ts';

const DS = { type: 'prometheus', uid: '${datasource}' };
const variable = (name: string, label: string) => ({
  name,
  label,
  type: 'query',
  datasource: DS,
  multi: true,
  allValue: '.+',
  refresh: 2,
  query: { query: `label_values(up{job=~"$job"}, ${name})` },
});
function good(): Dashboard & Record<string, any> {
  return {
    title: 'Good',
    editable: false,
    templating: { list: [{ name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus' }, variable('job', 'Job'), variable('instance', 'Instance')] },
    panels: [
      { type: 'row', title: 'Row', panels: [] },
      {
        id: 2,
        type: 'timeseries',
        title: 'Requests',
        description: 'Request rate.',
        datasource: DS,
        fieldConfig: { defaults: { unit: 'reqps' }, overrides: [] },
        targets: [{ refId: 'A', expr: 'sum(rate(http_server_request_duration_seconds_count{job=~"$job", instance=~"$instance"}[$__rate_interval]))' }],
      },
    ],
  };
}
const rulesHit = (d: Dashboard) =>
  [
    ...new Set(
      lintDashboard(d)
        .filter((r) => r.severity === 'error')
        .map((r) => r.rule),
    ),
  ].sort();

test('a well-formed dashboard passes every rule', () => {
  assert.equal(lintDashboard(good()), []);
});

test("the rule set is the linter's", () => {
  assert.ok(RULES.length >= 15);
  for (const r of RULES) assert.match(r.name, /^(template|panel|target|uneditable)-[a-z-]+-rule$|^template-on-time-change-reload-rule$/);
});

// [rule expected to fire, how to break a good dashboard, other rules that fire as a consequence]
const cases: [string, (d: any) => void, string[]?][] = [
  ['template-datasource-rule', (d) => (d.templating.list = d.templating.list.filter((v: any) => v.type !== 'datasource')), ['panel-datasource-rule']],
  ['template-datasource-rule', (d) => (d.templating.list[0].name = 'prom'), ['panel-datasource-rule']],
  ['template-job-rule', (d) => (d.templating.list = d.templating.list.filter((v: any) => v.name !== 'job'))],
  ['template-job-rule', (d) => (d.templating.list[1].allValue = '.*')],
  ['template-instance-rule', (d) => (d.templating.list[2].multi = false)],
  ['template-instance-rule', (d) => (d.templating.list[2].datasource = { uid: 'P1809F7CD0C75ACF3' })],
  ['template-label-promql-rule', (d) => (d.templating.list[1].query = 'up{')],
  ['template-label-promql-rule', (d) => (d.templating.list[1].query = { query: 'label_values(sum(up{, job)' })],
  ['template-on-time-change-reload-rule', (d) => (d.templating.list[1].refresh = 1)],
  ['panel-datasource-rule', (d) => (d.panels[1].datasource = { type: 'prometheus', uid: 'P1809F7CD0C75ACF3' })],
  ['panel-title-description-rule', (d) => delete d.panels[1].description],
  ['panel-units-rule', (d) => delete d.panels[1].fieldConfig.defaults.unit],
  ['panel-units-rule', (d) => (d.panels[1].fieldConfig.defaults.unit = 'furlongs')],
  ['panel-no-targets-rule', (d) => delete d.panels[1].targets],
  ['target-promql-rule', (d) => (d.panels[1].targets[0].expr = 'sum(rate(up{job=~"$job", instance=~"$instance"}[$__rate_interval])')],
  ['target-rate-interval-rule', (d) => (d.panels[1].targets[0].expr = 'sum(rate(x_total{job=~"$job", instance=~"$instance"}[5m]))')],
  ['target-job-rule', (d) => (d.panels[1].targets[0].expr = 'up{instance=~"$instance"}')],
  ['target-job-rule', (d) => (d.panels[1].targets[0].expr = 'up{job="api", instance=~"$instance"}')],
  ['target-instance-rule', (d) => (d.panels[1].targets[0].expr = 'up{job=~"$job", instance=~".+"}')],
  ['target-counter-agg-rule', (d) => (d.panels[1].targets[0].expr = 'sum(x_total{job=~"$job", instance=~"$instance"})')],
  ['uneditable-dashboard-rule', (d) => (d.editable = true)],
];
for (const [rule, breakIt, also = []] of cases) {
  test(`${rule} catches: ${breakIt
    .toString()
    .replace(/^\(d\) => /, '')
    .slice(0, 70)}`, () => {
    const d = good();
    breakIt(d);
    assert.equal(rulesHit(d), [rule, ...also].sort());
  });
}

test('increase() over a fixed range and rate over $__rate_interval are fine', () => {
  const d = good();
  (d.panels![1] as any).targets[0].expr = 'sum(increase(x_total{job=~"$job", instance=~"$instance"}[1h])) / sum(rate(x_total{job=~"$job", instance=~"$instance"}[$__rate_interval]))';
  assert.equal(lintDashboard(d), []);
});

test('the template label warning is only a warning', () => {
  const d = good();
  (d.templating!.list![1] as any).label = 'job';
  const r = lintDashboard(d);
  assert.equal(
    r.map((x) => [x.rule, x.severity]),
    [['template-job-rule', 'warning']],
  );
});

test('.lint exclusions drop matching results only; warnings downgrade', () => {
  const d = good();
  (d.panels![1] as any).targets[0].expr = 'up{job=~"$job"}';
  const results = lintDashboard(d);
  assert.equal(
    results.map((r) => r.rule),
    ['target-instance-rule'],
  );
  assert.equal(applyConfig(results, { exclusions: { 'target-instance-rule': { reason: 'r', entries: [{ dashboard: 'Good', panel: 'Requests' }] } } }), []);
  assert.is(applyConfig(results, { exclusions: { 'target-instance-rule': { reason: 'r', entries: [{ panel: 'Other' }] } } }).length, 1);
  assert.equal(applyConfig(results, { exclusions: { 'target-instance-rule': null } }), []);
  assert.is(applyConfig(results, { warnings: { 'target-instance-rule': { reason: 'r' } } })[0].severity, 'warning');
});

test.run();
