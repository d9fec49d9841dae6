import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EXIT_INTERRUPTED, InterruptGuard } from '../../scripts/lib/core/interrupt.ts';

function guard() {
  const said: string[] = [];
  const exits: number[] = [];
  const firsts: string[] = [];
  const g = new InterruptGuard({
    onFirst: (s) => firsts.push(s),
    describeLeftovers: () => 'release pending-upgrade; lock held',
    write: (l) => said.push(l),
    exit: (c) => exits.push(c),
  });
  return { g, said, exits, firsts };
}

test('the first signal aborts the running step and tells the operator', () => {
  const { g, firsts, exits } = guard();
  assert.not.ok(g.interrupted);
  g.receive('SIGINT', 1000);
  assert.ok(g.interrupted);
  assert.ok(g.signal.aborted);
  assert.equal(firsts, ['SIGINT']);
  assert.equal(exits, []);
});

test('a signal right after the first (npx forwarding the same Ctrl-C) is not a second one', () => {
  const { g, said, exits } = guard();
  g.receive('SIGINT', 1000);
  g.receive('SIGINT', 1300);
  assert.equal(said, []);
  assert.equal(exits, []);
});

test('a second signal says what is left and does not skip the cleanup; a third abandons it, saying what is left', () => {
  const { g, said, exits } = guard();
  g.receive('SIGINT', 1000);
  g.receive('SIGINT', 5000);
  assert.equal(exits, []);
  assert.match(said.join('\n'), /cleanup is still running.*pending-upgrade; lock held/s);
  g.receive('SIGTERM', 9000);
  assert.equal(exits, [EXIT_INTERRUPTED]);
  assert.match(said.at(-1)!, /abandoning the cleanup\. Left behind: release pending-upgrade; lock held/);
});

test.run();
