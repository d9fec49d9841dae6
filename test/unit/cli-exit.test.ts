// A command ends when its handler has settled, even if something it opened (a keep-alive socket,
// a server, a stray timer) would keep node running: a real child process runs runCommand with a
// handler that leaves a listening server behind, and must exit with the handler's code.
import { spawnSync } from 'node:child_process';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const test = suite('cli exit');
const cli = new URL('../../scripts/lib/core/cli.ts', import.meta.url).href;

function runScript(body: string): { status: number | null; ms: number; stdout: string } {
  const script = `import('${cli}').then(async ({ runCommand }) => { const net = await import('node:net'); await runCommand({ name: 't', summary: 's', usage: [], flags: {} }, async () => { ${body} }, []); });`;
  const started = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, ms: Date.now() - started, stdout: r.stdout };
}

test('a handler that leaves a server listening still ends the process with its exit code', () => {
  const r = runScript(`net.createServer().listen(0, '127.0.0.1'); process.stdout.write('done'); return 3;`);
  assert.is(r.status, 3, 'the process ended by itself, with the handler code (not killed by the 30 s timeout)');
  assert.is(r.stdout, 'done');
});

test('a handler that throws with a handle left open ends with the error exit code', () => {
  const r = runScript(`setInterval(() => {}, 1000); throw new Error('boom');`);
  assert.is(r.status, 1);
});

test.run();
