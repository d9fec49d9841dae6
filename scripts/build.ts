#!/usr/bin/env -S npx zx
// build.ts: build the ConduitLLM images from a source checkout, tag them <version> and
// <version>-<shortsha>, and optionally push them and record the pushed digests in a lock file.
import path from 'node:path';
import { runCommand } from './lib/core/cli.ts';
import { detectEngine, exec, inspectImage, pushImage } from './lib/adapters/container.ts';
import { usageError, UserError } from './lib/core/errors.ts';
import { ALL, COMPONENTS, componentsFor, DEFAULT_DOCKERFILE_DIR, parseBuildArgs, planBuild, planText, readSource, writeLock, type ImageLock } from './lib/engines/build.ts';
import { displayPath, REPO_ROOT } from './lib/core/paths.ts';
import { formatMs, table } from './lib/core/ui.ts';

const spec = {
  name: 'build.ts',
  summary: 'Build (and push) the ConduitLLM container images from a source checkout.',
  usage: [
    'npx zx scripts/build.ts --source DIR [--component api|admin|webui|all] [--tag T] [--engine docker|podman] [--platform P] [--dry-run] [--json]',
    'npx zx scripts/build.ts --source DIR --push --registry R [--lock-file F] [--allow-latest] [--insecure]',
  ],
  flags: {
    component: {
      type: 'string' as const,
      arg: 'NAME',
      default: 'all',
      description: `Which image: ${COMPONENTS.map((c) => c.name).join(', ')} or all (= ${ALL.join(', ')}); comma-separated for several.`,
    },
    source: { type: 'string' as const, arg: 'DIR', description: 'A ConduitLLM git checkout (the build context). Not needed for --component rabbitmq.' },
    tag: { type: 'string' as const, arg: 'T', description: 'Version tag (default: <Version> of Directory.Build.props in the source).' },
    push: { type: 'boolean' as const, description: 'Push both tags to --registry and record the digests in the lock file.' },
    registry: { type: 'string' as const, arg: 'R', description: 'Registry and namespace, e.g. ghcr.io/your-org (images: R/conduit-http, R/conduit-admin, R/conduit-webui).' },
    engine: { type: 'string' as const, arg: 'E', description: 'docker or podman (default: docker when its engine and buildx work, else podman).' },
    platform: { type: 'string' as const, arg: 'P', description: 'Target platform, e.g. linux/amd64 (the upstream images are amd64 only).' },
    'dockerfile-dir': { type: 'string' as const, arg: 'D', description: 'Directory with <component>.Dockerfile files (default: docker/ of this repository).' },
    'lock-file': { type: 'string' as const, arg: 'F', default: 'images.lock.json', description: 'Where --push records component -> repository, tag, digest (read by deploy.ts --images-from).' },
    'allow-latest': { type: 'boolean' as const, description: 'Allow pushing the tag "latest" (refused otherwise).' },
    insecure: { type: 'boolean' as const, description: 'Push without TLS verification (a local plain-HTTP registry; podman only).' },
    'build-arg': {
      type: 'string' as const,
      arg: 'K=V',
      multiple: true as const,
      description: 'Extra build argument, e.g. ASPNET_IMAGE=mirror.example/dotnet/aspnet@sha256:... (base image overrides).',
    },
    'dry-run': { type: 'boolean' as const, description: 'Print the exact build and push commands; run nothing.' },
  },
  examples: [
    'npx zx scripts/build.ts --source ../Conduit --component api --dry-run',
    'npx zx scripts/build.ts --source ../Conduit --tag 1.4.2 --push --registry ghcr.io/acme',
    'npx zx scripts/build.ts --component rabbitmq',
  ],
  notes: [
    'Tags: <version> and <version>-<shortsha> (shortsha of the source HEAD). Labels: org.opencontainers.image.{source,revision,version,created}.',
    'Environment: CONDUIT_DOCKER / CONDUIT_PODMAN point at other engine binaries; CONTAINERS_CONF is honoured by podman.',
  ],
};

await runCommand(spec, async ({ flags, positionals, reporter }) => {
  if (positionals.length) throw usageError(`unexpected argument "${positionals[0]}"`, 'build.ts takes flags only (see --help).');
  const components = componentsFor(flags.component as string);
  const needsSource = components.some((c) => !c.selfContained);
  if (needsSource && !flags.source) throw usageError('--source DIR is required', 'Point it at a ConduitLLM git checkout.');
  const dryRun = flags['dry-run'];
  const engine = await detectEngine({ choice: flags.engine, dryRun });
  const source = needsSource ? await readSource(path.resolve(flags.source as string)) : undefined;
  const toolkit = components.some((c) => c.selfContained) ? await readSource(REPO_ROOT) : undefined;
  if (source?.dirty) reporter.warn(`${displayPath(source.dir)} has uncommitted changes: the image will not match commit ${source.shortSha}`);
  const plans = planBuild(engine, {
    components,
    source,
    toolkit,
    tag: flags.tag,
    registry: flags.registry,
    push: flags.push,
    allowLatest: flags['allow-latest'],
    insecure: flags.insecure,
    platform: flags.platform,
    dockerfileDir: path.resolve(flags['dockerfile-dir'] ?? DEFAULT_DOCKERFILE_DIR),
    buildArgs: parseBuildArgs(flags['build-arg']),
  });

  if (dryRun) {
    reporter.result(`engine: ${engine.name}\n\n${planText(plans)}`, {
      ok: true,
      dryRun: true,
      engine: engine.name,
      components: plans.map((p) => ({ component: p.component, refs: p.refs, labels: p.labels, build: [p.build.cmd, ...p.build.args], push: p.push.map((c) => [c.cmd, ...c.args]) })),
    });
    return 0;
  }

  reporter.info(`engine: ${engine.name} ${engine.version}`);
  const results = [];
  const lock: ImageLock = {};
  for (const p of plans) {
    const started = performance.now();
    await reporter.step(`build ${p.component} (${p.refs[0]})`, async () => {
      const r = await exec(p.build, { timeoutMs: 60 * 60_000, streamStderr: !reporter.json && !process.env.CI });
      if (r.exitCode !== 0) {
        const tail = (r.stderr || r.stdout).trim().split('\n').slice(-20).join('\n');
        throw new UserError(`building ${p.component} failed (${engine.bin} exited ${r.exitCode}${r.timedOut ? ', timed out' : ''}):\n${tail}`, {
          hint: 'The engine output above names the failing Dockerfile step.',
        });
      }
    });
    const info = await inspectImage(engine, p.refs[0]);
    const pushed: { ref: string; digest: string }[] = [];
    for (const ref of flags.push ? p.refs : []) {
      const digest = await reporter.step(`push ${ref}`, (progress) => pushImage(engine, ref, { insecure: flags.insecure, onRetry: (n, err) => progress(`attempt ${n} failed (${err}); retrying`) }));
      pushed.push({ ref, digest });
    }
    if (pushed.length) {
      lock[p.component] = {
        repository: p.repository,
        tag: p.version,
        digest: pushed[0].digest,
        image: `${p.repository}@${pushed[0].digest}`,
        revision: p.labels['org.opencontainers.image.revision'],
        pushedAt: new Date().toISOString(),
      };
    }
    results.push({ component: p.component, refs: p.refs, imageId: info.id, labels: p.labels, pushed, ms: Math.round(performance.now() - started) });
  }
  const lockFile = flags.push ? path.resolve(flags['lock-file'] as string) : undefined;
  if (lockFile) writeLock(lockFile, lock);
  const human = [
    table(
      ['component', 'image', 'digest', 'time'],
      results.map((r) => [r.component, r.refs.join(' '), r.pushed[0]?.digest ?? '(not pushed)', formatMs(r.ms)]),
    ),
    lockFile ? `\nDigests recorded in ${displayPath(lockFile)}.` : '',
  ].join('\n');
  reporter.result(human, { ok: true, engine: engine.name, components: results, lockFile: lockFile ?? null });
  return 0;
});
