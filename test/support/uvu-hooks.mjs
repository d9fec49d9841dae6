// Module load hook for the test runner. uvu 0.5 runs a suite's `before` hooks inside a try whose
// `finally` returns, so an error thrown by a `before` hook vanishes: the suite shows (0 / N) with
// no reason. This rewrites that one loop so the error is reported like a failing test.
const LOOP = 'for (hook of before) await hook(state);';
const REPORTED = 'try { for (hook of before) await hook(state); } catch (err) { errors += format("before hook", err, name); write(FAIL); throw err; }';

export async function load(url, context, nextLoad) {
  const result = await nextLoad(url, context);
  if (/\/uvu\/dist\/index\.mjs$/.test(url) && result.source) {
    const source = String(result.source);
    if (!source.includes(LOOP)) throw new Error('test/support/uvu-hooks.mjs: uvu changed; its before-hook loop was not found');
    return { ...result, source: source.replace(LOOP, REPORTED) };
  }
  return result;
}
