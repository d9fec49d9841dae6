// The render gate: a helm post-renderer that hands helm's rendered manifest to this process and waits
// for a verdict before helm applies anything. The deploy validates and diffs exactly the manifest the
// upgrade is about to apply, while helm is already running (its start-up, release checks and render
// overlap with the deploy's own validation), instead of rendering the chart a second time first.
//
// Helm 3 runs the gate as `--post-renderer /path/gate.sh`; Helm 4 only runs post-renderer plugins, so
// the same script is installed as the plugin `conduit-gate` in a private plugin directory
// (HELM_PLUGINS for that one helm process). The script and this process talk through two FIFOs in a
// private directory (0700): the script stores the manifest (0600, removed on close), writes a line to
// `request`, and reads one line from `response`: `ok` (the manifest goes back to helm unchanged) or
// anything else (the script fails with the reason; helm stops before it stores or applies anything).
//
// This process holds both FIFOs open read-write and non-blocking from the start, so no open() ever
// waits for the other end: the script's opens return at once, a verdict written before the script
// asks waits in the pipe, and `request` is watched by the event loop. Nothing is ever parked in the
// thread pool (a pool thread blocked in a FIFO open would keep even process.exit from returning).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
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
# Should deploy.ts die without closing the gate (SIGKILL), nothing waits here for good on a FIFO
# nobody holds any more: this script ends within a second of it.
watchdog=
if [ -n "$CONDUIT_GATE_PID" ]; then
  (while kill -0 "$CONDUIT_GATE_PID" 2>/dev/null; do sleep 1; done; kill $$ 2>/dev/null) </dev/null >/dev/null 2>&1 &
  watchdog=$!
fi
cat > "$d/manifest"
echo ready > "$d/request"
verdict=
read -r verdict < "$d/response" || true
if [ -n "$watchdog" ]; then kill "$watchdog" 2>/dev/null || true; fi
if [ "$verdict" = ok ]; then exec cat "$d/manifest"; fi
cat "$d/reason" >&2 2>/dev/null || echo "refused by deploy.ts (no reason given)" >&2
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
  private closed = false;
  /** `request`, watched by the event loop: the script wrote its line (or the gate was cancelled). */
  private readonly requestWatch: net.Socket;
  private readonly requested: Promise<void>;
  private release!: () => void;
  /** `response`, held read-write: the script's read-only open never waits, and a verdict waits in the pipe. */
  private readonly responseFd: number;

  private constructor(dir: string, helmArgs: string[], env: Record<string, string>) {
    this.dir = dir;
    this.helmArgs = helmArgs;
    this.env = env;
    const open = (name: string) => fs.openSync(path.join(dir, name), fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
    this.responseFd = open('response');
    this.requested = new Promise((resolve) => (this.release = resolve));
    this.requestWatch = new net.Socket({ fd: open('request'), readable: true, writable: false });
    this.requestWatch.once('data', () => this.release());
    this.requestWatch.on('error', () => this.release());
    // A gate alone never keeps the process alive: helm, its child, does while it runs.
    this.requestWatch.unref();
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
    return new RenderGate(dir, route.args, { CONDUIT_GATE_DIR: dir, CONDUIT_GATE_PID: String(process.pid), ...route.env });
  }

  /** helm's rendered manifest, once helm reaches the gate; undefined when cancelled first (or after). */
  async manifest(): Promise<string | undefined> {
    await this.requested;
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

  /** The verdict goes into the pipe at once (a few bytes never fill it); the script reads it when it gets there. */
  private async answer(verdict: string): Promise<void> {
    if (!this.pending) return;
    this.decided = true;
    fs.writeSync(this.responseFd, `${verdict}\n`);
  }

  /** Helm exited (or was stopped): whoever waits for its manifest gets undefined, now or later. */
  cancel(): void {
    this.cancelled = true;
    this.release();
  }

  /**
   * Remove the directory (the stored manifest holds Secret values), then let go of the FIFOs: a script
   * still waiting for a verdict reads end-of-file and fails; one that starts later finds no FIFO.
   */
  async close(): Promise<void> {
    this.cancel();
    if (this.closed) return;
    this.closed = true;
    fs.rmSync(this.dir, { recursive: true, force: true });
    this.requestWatch.destroy();
    fs.closeSync(this.responseFd);
  }
}
