// Durations as operators write them on the command line and in values (Go-style: 90s, 10m, 1h30m).
import { UserError } from './errors.ts';

/** Seconds of a Go-style duration (90s, 10m, 1h30m). */
export function durationSeconds(d: string): number {
  const re = /(\d+(?:\.\d+)?)(h|ms|m|s)/g;
  let total = 0;
  let consumed = '';
  for (const m of d.matchAll(re)) {
    const n = Number(m[1]);
    total += m[2] === 'h' ? n * 3600 : m[2] === 'm' ? n * 60 : m[2] === 's' ? n : n / 1000;
    consumed += m[0];
  }
  if (!d || consumed !== d) throw new UserError(`invalid duration "${d}"`, { hint: 'Use e.g. 90s, 10m or 1h30m.', exitCode: 2 });
  return total;
}
