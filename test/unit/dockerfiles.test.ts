import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { analyse, dockerfileProblems } from '../helpers/dockerfile-rules.ts';
import { REPO_ROOT } from '../../scripts/lib/core/paths.ts';
import { run } from '../../scripts/lib/core/exec.ts';

const DIR = path.join(REPO_ROOT, 'docker');
const IMAGES = [
  { file: 'api.Dockerfile', uid: 1000, healthPath: '/health/ready', entry: 'ConduitLLM.Http.dll' },
  { file: 'admin.Dockerfile', uid: 1000, healthPath: '/health/ready', entry: 'ConduitLLM.Admin.dll' },
  { file: 'webui.Dockerfile', uid: 1001, healthPath: '/api/health', entry: 'next' },
];

for (const img of IMAGES) {
  const text = fs.readFileSync(path.join(DIR, img.file), 'utf8');

  test(`${img.file}: multi-stage, digest-pinned, non-root, HEALTHCHECK, OCI labels`, () => {
    assert.equal(dockerfileProblems(text, img), []);
  });

  test(`${img.file}: base images are the real mcr.microsoft.com/dotnet and node images, overridable by build arg`, () => {
    const { bases, initial } = analyse(text);
    const names = new Set(bases.map((b) => b.name));
    if (img.file === 'webui.Dockerfile') assert.equal([...names], ['node']);
    else assert.equal([...names].sort(), ['mcr.microsoft.com/dotnet/aspnet', 'mcr.microsoft.com/dotnet/sdk']);
    for (const b of bases) assert.match(b.tag ?? '', img.file === 'webui.Dockerfile' ? /^22\./ : /^9\.0/);
    // Every base comes from an ARG default, so --build-arg can swap it (mirrors, newer digests).
    assert.ok(Object.values(initial).filter((v) => v.includes('@sha256:')).length >= 1);
  });

  test(`${img.file}: runs the app directly and has its .dockerignore`, () => {
    const { finalStage } = analyse(text);
    const entry = finalStage.filter((i) => i.getKeyword() === 'ENTRYPOINT').pop();
    assert.ok(entry, 'ENTRYPOINT missing');
    assert.match(entry.getArgumentsContent() ?? '', /^\[/, 'ENTRYPOINT must be exec form (signals reach the app)');
    assert.ok((entry.getArgumentsContent() ?? '').includes(img.entry));
    assert.ok(fs.existsSync(path.join(DIR, `${img.file}.dockerignore`)));
  });
}

test('the .NET images are distroless: their final stage runs no shell command at all', () => {
  for (const f of ['api.Dockerfile', 'admin.Dockerfile']) {
    const { finalStage } = analyse(fs.readFileSync(path.join(DIR, f), 'utf8'));
    assert.equal(finalStage.filter((i) => i.getKeyword() === 'RUN').length, 0, f);
    assert.match(fs.readFileSync(path.join(DIR, f), 'utf8'), /ASPNET_IMAGE=mcr\.microsoft\.com\/dotnet\/aspnet:[^\s]*chiseled/);
  }
});

test('.dockerignore files keep secrets and build output out of the context', () => {
  for (const f of ['api', 'admin', 'webui']) {
    const lines = fs.readFileSync(path.join(DIR, `${f}.Dockerfile.dockerignore`), 'utf8').split('\n');
    assert.ok(lines.includes('**/.env'), `${f}: .env`);
    assert.ok(
      lines.some((l) => /node_modules/.test(l)),
      `${f}: node_modules`,
    );
  }
});

test('every RUN of every Dockerfile is valid POSIX shell (the images run them with /bin/sh)', async () => {
  const files = fs.readdirSync(DIR).filter((f) => f.endsWith('.Dockerfile'));
  assert.ok(files.length >= 4);
  for (const f of files) {
    const { df } = analyse(fs.readFileSync(path.join(DIR, f), 'utf8'));
    for (const i of df.getInstructions().filter((x) => x.getKeyword() === 'RUN')) {
      const script = (i.getArgumentsContent() ?? '').replace(/\\\n/g, ' ').replace(/^(\s*--[a-z]+=\S+)+\s*/, '');
      const r = await run('sh', ['-n', '-c', script]);
      assert.is(r.exitCode, 0, `${f} line ${i.getRange().start.line + 1}: ${r.stderr}`);
    }
  }
  const broken = await run('sh', ['-n', '-c', 'cd x && if then fi']);
  assert.is.not(broken.exitCode, 0, 'the syntax check can fail');
});

test('the rules catch a bad Dockerfile (the checks can fail)', () => {
  const bad = 'FROM node:latest\nRUN apt-get update && apt-get install -y curl\nUSER root\nHEALTHCHECK CMD curl -f http://localhost:3000/api/health\nCMD ["node"]\n';
  const problems = dockerfileProblems(bad, { uid: 1001, healthPath: '/api/health' });
  for (const p of [/multi-stage/, /uses the tag latest/, /not pinned by a sha256 digest/, /is root/, /not in exec form/, /installs packages/, /missing label org.opencontainers.image.source/]) {
    assert.ok(
      problems.some((x) => p.test(x)),
      `expected ${p} in ${JSON.stringify(problems)}`,
    );
  }
  const unpinned =
    'ARG B=node:22-bookworm-slim\nFROM ${B} AS a\nFROM a\nUSER 1001\nHEALTHCHECK CMD ["node","-e","/api/health"]\nLABEL org.opencontainers.image.source=x org.opencontainers.image.revision=x org.opencontainers.image.version=x org.opencontainers.image.created=x\n';
  assert.equal(dockerfileProblems(unpinned, { uid: 1001, healthPath: '/api/health' }), ['base node:22-bookworm-slim is not pinned by a sha256 digest']);
});

test.run();
