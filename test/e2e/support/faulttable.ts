// The fault-injection table: each fault the e2e suites inject (a SIGKILL at some phase, the API
// server restarted, a restore killed) records one row: what was done, in which phase, the state it
// left, what recovered it and how long that took. The table is printed when the test process ends.
import { table } from '../../../scripts/lib/core/ui.ts';

export interface FaultRow {
  fault: string;
  phase: string;
  stateLeft: string;
  recoveredBy: string;
  /** Time from the start of the recovering command to its successful end. */
  recoverMs: number;
  recovered: boolean;
}

const rows: FaultRow[] = [];

export function recordFault(row: FaultRow): void {
  if (!rows.length) process.once('beforeExit', () => process.stdout.write(`\n${formatFaultTable(rows)}\n`));
  rows.push(row);
}

export function formatFaultTable(all: readonly FaultRow[]): string {
  const recovered = all.filter((r) => r.recovered).length;
  return [
    `Fault injection: ${recovered}/${all.length} recovered`,
    table(
      ['fault', 'phase', 'state left', 'recovered by', 'time to recover'],
      all.map((r) => [r.fault, r.phase, r.stateLeft, r.recovered ? r.recoveredBy : `NOT RECOVERED (${r.recoveredBy})`, `${(r.recoverMs / 1000).toFixed(1)} s`]),
    ),
  ].join('\n');
}
