// Coverage gate for the pure core: tap only knows "100% or not enforced", so
// this reads tap's istanbul json-summary and requires at least THRESHOLD percent
// of lines and of branches over all files under src/core/. A run that measured
// no src/core file at all fails too: that is a misconfigured run, not a pass.
import { readFileSync } from 'node:fs';
import { resolve, sep } from 'node:path';

const THRESHOLD = 90;
const summaryPath = resolve('.tap/report/coverage-summary.json');
let summary;
try {
  summary = JSON.parse(readFileSync(summaryPath, 'utf8'));
} catch (err) {
  console.error(`coverage gate: cannot read ${summaryPath}: ${err.message}`);
  process.exit(1);
}
const core = `${sep}src${sep}core${sep}`;
const totals = { lines: { total: 0, covered: 0 }, branches: { total: 0, covered: 0 } };
let files = 0;
for (const [file, s] of Object.entries(summary)) {
  if (file === 'total' || !file.includes(core)) continue;
  files++;
  for (const k of ['lines', 'branches']) {
    totals[k].total += s[k].total;
    totals[k].covered += s[k].covered;
  }
}
if (files === 0) {
  console.error('coverage gate: no file under src/core/ was measured');
  process.exit(1);
}
let ok = true;
for (const k of ['lines', 'branches']) {
  const { total, covered } = totals[k];
  const pct = total === 0 ? 100 : (100 * covered) / total;
  const verdict = pct >= THRESHOLD ? 'ok' : 'BELOW THRESHOLD';
  console.log(`coverage gate: src/core ${k} ${pct.toFixed(1)}% (${covered}/${total}, need ${THRESHOLD}%) ${verdict}`);
  if (pct < THRESHOLD) ok = false;
}
process.exit(ok ? 0 : 1);
