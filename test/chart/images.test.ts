// The default ConduitLLM images are ones upstream really publishes: one immutable reference,
// `master-<7-char sha>` (what upstream CI tags every master commit with) or a digest, the same in
// Chart.yaml's appVersion, its artifacthub.io/images annotation, the rendered Deployments,
// compose/.env.example and the metric catalog. The moving tags (`latest`, `master`) are refused
// in production, and the default images pass deploy.ts's own reference parser.
import fs from 'node:fs';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { parse as parseYaml } from 'yaml';
import { parseImageReference } from '../../scripts/lib/adapters/registry.ts';
import { CHART_DIR, REPO_ROOT } from '../../scripts/lib/core/paths.ts';
import { find, renderError, renderObjects, WEBUI_ON } from './helpers.ts';

const test = suite('default images');

/** What upstream CI publishes for a master commit (docker/metadata-action type=sha, prefix {{branch}}-). */
const PUBLISHED = /^(master-[0-9a-f]{7}|sha256:[0-9a-f]{64})$/;
const COMPONENTS = { api: 'conduit-http', admin: 'conduit-admin', webui: 'conduit-webui' } as const;

const chart = parseYaml(fs.readFileSync(path.join(CHART_DIR, 'Chart.yaml'), 'utf8')) as { appVersion: string; annotations: Record<string, string> };
const appVersion = String(chart.appVersion);
const imageOf = (repo: string) => `ghcr.io/knnlabs/${repo}:${appVersion}`;

test('appVersion is a tag upstream publishes for a master commit', () => {
  assert.match(appVersion, PUBLISHED, `Chart.yaml appVersion "${appVersion}" is not master-<7-char sha>: no such image is published`);
  assert.ok(!['latest', 'master'].includes(appVersion));
});

test('the artifacthub.io/images annotation names the same three images', () => {
  const annotated = (parseYaml(chart.annotations['artifacthub.io/images']) as { name: string; image: string }[]).map((i) => i.image);
  for (const repo of Object.values(COMPONENTS)) assert.ok(annotated.includes(imageOf(repo)), `artifacthub.io/images lacks ${imageOf(repo)}: ${annotated.join(', ')}`);
  for (const i of annotated) parseImageReference(i);
});

test('the rendered default Deployments run exactly those images', async () => {
  const objects = await renderObjects({ values: WEBUI_ON });
  for (const [component, repo] of Object.entries(COMPONENTS)) {
    const image = find(objects, 'Deployment', `conduit-${component}`).spec.template.spec.containers[0].image;
    assert.is(image, imageOf(repo), `${component}`);
    const ref = parseImageReference(image);
    assert.equal([ref.registry, ref.repository, ref.tag], ['ghcr.io', `knnlabs/${repo}`, appVersion]);
  }
});

test('compose/.env.example and the metric catalog name the same reference', () => {
  const env = Object.fromEntries(
    fs
      .readFileSync(path.join(REPO_ROOT, 'compose', '.env.example'), 'utf8')
      .split('\n')
      .filter((l) => /^[A-Z_]+=/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  assert.is(env.CONDUIT_API_IMAGE, imageOf('conduit-http'));
  assert.is(env.CONDUIT_ADMIN_IMAGE, imageOf('conduit-admin'));
  assert.is(env.CONDUIT_WEBUI_IMAGE, imageOf('conduit-webui'));
  const catalog = parseYaml(fs.readFileSync(path.join(REPO_ROOT, 'schemas', 'metric-catalog.yaml'), 'utf8')) as {
    app: { version: string };
    sources: Record<string, { kind: string; appVersion?: string }>;
  };
  assert.is(catalog.app.version, appVersion);
  const app = Object.values(catalog.sources).filter((s) => s.kind === 'app');
  assert.ok(app.length > 0);
  for (const s of app) assert.is(s.appVersion, appVersion);
});

test('--image-tag and values still override the default; a digest wins over the tag', async () => {
  const objects = await renderObjects({ values: { api: { image: { tag: 'master-0123abc' } }, admin: { image: { digest: 'sha256:' + 'd'.repeat(64) } } } });
  assert.is(find(objects, 'Deployment', 'conduit-api').spec.template.spec.containers[0].image, 'ghcr.io/knnlabs/conduit-http:master-0123abc');
  assert.is(find(objects, 'Deployment', 'conduit-admin').spec.template.spec.containers[0].image, `ghcr.io/knnlabs/conduit-admin@sha256:${'d'.repeat(64)}`);
});

test('the moving master tag is refused in production like latest, naming the key; elsewhere and with a digest it renders', async () => {
  const msg = await renderError({ values: { api: { image: { tag: 'master' } } } });
  assert.match(msg, /^conduit: api\.image\.tag is master, which is refused when global\.environment is production: master moves on every upstream master push/);
  assert.match(msg, new RegExp(`Set api\\.image\\.tag to an immutable tag \\(master-<7-char commit sha>, e\\.g\\. the chart's appVersion ${appVersion}\\) or api\\.image\\.digest`));
  assert.match(await renderError({ values: { admin: { image: { tag: 'master' } } } }), /^conduit: admin\.image\.tag is master/);
  await renderObjects({ values: { global: { environment: 'staging' }, api: { image: { tag: 'master' } } } });
  await renderObjects({ values: { api: { image: { tag: 'master', digest: 'sha256:' + 'e'.repeat(64) } } } });
});

test.run();
