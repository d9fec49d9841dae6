// The render gate: a helm post-renderer that hands helm's rendered manifest to this process and waits
// for a verdict before helm applies anything. The deploy validates and diffs exactly the manifest the
// upgrade is about to apply, while helm is already running (its start-up, release checks and render
// overlap with the deploy's own validation), instead of rendering the chart a second time first.
//
// Helm 3 runs the gate as `--post-renderer /path/gate.sh`; Helm 4 only runs post-renderer plugins, so
// the same script is installed as the plugin `conduit-gate` in a private plugin directory
// (HELM_PLUGINS for that one helm process). The script and this process talk through two FIFOs in a
// private directory (0700): the script stores the manifest (0600, removed on close), signals on
// `request`, and blocks on `response` until the deploy writes `ok` (the manifest goes back to helm
// unchanged) or `refuse` (the script fails; helm stops before it stores or applies anything).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Helm } from '../adapters/helm.ts';

const PLUGIN = 'conduit-gate';

const SCRIPT = `#!/bin/sh
# conduit render gate (written by deploy.ts for one helm run; see scripts/lib/domain/gate.ts)
set -e
d="$CONDUIT_GATE_DIR"
umask 077
cat > "$d/manifest"
: > "$d/request"
verdict=$(cat "$d/response")
if [ "$verdict" = ok ]; then exec cat "$d/manifest"; fi
cat "$d/reason" >&2
exit 1
`;

export class RenderGate {
  readonly dir: string;
  /** Extra helm arguments that route the render through the gate. */
  readonly helmArgs: string[];
  /** Extra environment of the helm process. */
  readonly env: Record<string, string>;
  private cancelled = false;
  private decided = false;
  private requested?: Promise<void>;
  /** FIFO operations still running in the thread pool (each may be blocked in open() until the other end opens). */
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Settles once every FIFO operation has ended after a cancel. */
  private drained?: Promise<void>;

  private constructor(dir: string, helmArgs: string[], env: Record<string, string>) {
    this.dir = dir;
    this.helmArgs = helmArgs;
    this.env = env;
  }

  /** A gate for one run of this helm. */
  static async open(helm: Pick<Helm, 'postRendererArgs'>): Promise<RenderGate> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conduit-gate-'));
    fs.chmodSync(dir, 0o700);
    const pluginDir = path.join(dir, 'plugins', PLUGIN);
    fs.mkdirSync(pluginDir, { recursive: true });
    const script = path.join(pluginDir, 'gate.sh');
    fs.writeFileSync(script, SCRIPT, { mode: 0o700 });
    fs.writeFileSync(
      path.join(pluginDir, 'plugin.yaml'),
      [
        'apiVersion: v1',
        'type: postrenderer/v1',
        `name: ${PLUGIN}`,
        'version: 1.0.0',
        'runtime: subprocess',
        'runtimeConfig:',
        '  platformCommand:',
        '    - command: "${HELM_PLUGIN_DIR}/gate.sh"',
        '',
      ].join('\n'),
    );
    await promisify(execFile)('mkfifo', ['-m', '600', path.join(dir, 'request'), path.join(dir, 'response')]);
    const route = helm.postRendererArgs({ executable: script, plugin: PLUGIN, pluginsDir: path.join(dir, 'plugins') });
    return new RenderGate(dir, route.args, { CONDUIT_GATE_DIR: dir, ...route.env });
  }

  /**
   * Reads the script's signal on `request` (once): its open blocks until the script opens the other
   * end, and the script waits for this reader before it waits for the verdict, so a verdict given
   * before anyone asked for the manifest needs it too.
   */
  private request(): Promise<void> {
    return (this.requested ??= this.track(fs.promises.readFile(path.join(this.dir, 'request'))).then(
      () => undefined,
      () => undefined,
    ));
  }

  private track<T>(op: Promise<T>): Promise<T> {
    const settled = op.then(
      () => undefined,
      () => undefined,
    );
    this.inFlight.add(settled);
    void settled.then(() => this.inFlight.delete(settled));
    return op;
  }

  /** helm's rendered manifest, once helm reaches the gate; undefined when cancelled first. */
  async manifest(): Promise<string | undefined> {
    await this.request();
    if (this.cancelled) return undefined;
    return fs.promises.readFile(path.join(this.dir, 'manifest'), 'utf8');
  }

  /** Let helm go on with the manifest it rendered. */
  approve(): Promise<void> {
    return this.answer('ok');
  }

  /** Stop helm before it stores or applies anything; `reason` is what helm prints. */
  refuse(reason: string): Promise<void> {
    if (!this.pending) return Promise.resolve();
    fs.writeFileSync(path.join(this.dir, 'reason'), reason.endsWith('\n') ? reason : `${reason}\n`);
    return this.answer('refuse');
  }

  /** Neither answered nor cancelled: helm may still be waiting for a verdict. */
  get pending(): boolean {
    return !this.decided && !this.cancelled;
  }

  private async answer(verdict: string): Promise<void> {
    if (!this.pending) return;
    this.decided = true;
    void this.request();
    // Opening the FIFO waits for the script to read; a cancel (helm gone) opens the other end.
    await this.track(fs.promises.writeFile(path.join(this.dir, 'response'), `${verdict}\n`)).catch((e: NodeJS.ErrnoException) => {
      if (!this.cancelled) throw e;
    });
  }

  /**
   * Helm exited (or was stopped): release whatever this side is still waiting for, so no FIFO open
   * stays blocked in the thread pool (a blocked pool thread would even keep process.exit from
   * returning). The other end is opened until every operation has ended: an open that the pool had not
   * started yet at the first poke would otherwise block later, for good.
   */
  cancel(): Promise<void> {
    if (this.drained) return this.drained;
    this.cancelled = true;
    const poke = (name: string, flags: number) => {
      try {
        fs.closeSync(fs.openSync(path.join(this.dir, name), flags | fs.constants.O_NONBLOCK));
      } catch {
        // nobody waiting on that end (yet)
      }
    };
    this.drained = (async () => {
      for (let i = 0; i < 500 && this.inFlight.size; i++) {
        poke('request', fs.constants.O_WRONLY);
        if (this.decided) poke('response', fs.constants.O_RDONLY);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    return this.drained;
  }

  /** Remove the directory (the stored manifest holds Secret values), once nothing waits on its FIFOs. */
  async close(): Promise<void> {
    await this.cancel();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
