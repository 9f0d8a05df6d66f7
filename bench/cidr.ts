// bench/cidr: aggregate 100,000 random /26 prefixes inside 100.64.0.0/10 and
// print how long it takes (parse, aggregate). A benchmark, not a test: it
// prints numbers and asserts nothing about time.
import { aggregate, formatPrefix, parsePrefix, prefixOf, type Prefix } from '../src/core/cidr.js';
import { rng } from './lib/rng.js';
import { record, round } from './lib/report.js';
import { exitOnHelp } from './lib/help.js';

exitOnHelp(import.meta.url);

const COUNT = Number(process.env.BENCH_COUNT ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const network = parsePrefix('100.64.0.0/10');


const next = rng(42);
const blocksInNetwork = 1 << (26 - network.len);
const texts: string[] = [];
for (let i = 0; i < COUNT; i++) {
  const index = Math.floor(next() * blocksInNetwork);
  const p = prefixOf({ family: 4, addr: network.addr + BigInt(index) * 64n }, 26);
  texts.push(formatPrefix(p));
}

function ms(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

const parseTimes: number[] = [];
const aggTimes: number[] = [];
let result: Prefix[] = [];
for (let r = 0; r < ROUNDS; r++) {
  let t0 = process.hrtime.bigint();
  const prefixes = texts.map(parsePrefix);
  parseTimes.push(ms(t0));
  t0 = process.hrtime.bigint();
  result = aggregate(prefixes);
  aggTimes.push(ms(t0));
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
console.log(`bench/cidr: ${COUNT} random /26 in ${formatPrefix(network)}, ${ROUNDS} rounds`);
console.log(`  parse     median ${median(parseTimes).toFixed(1)} ms  (${((median(parseTimes) * 1e3) / COUNT).toFixed(2)} µs/prefix)`);
console.log(`  aggregate median ${median(aggTimes).toFixed(1)} ms  (${((median(aggTimes) * 1e3) / COUNT).toFixed(2)} µs/prefix)`);
console.log(`  result    ${result.length} prefixes`);
record({ cidr_aggregate: { prefixes: COUNT, parse_ms: round(median(parseTimes)), aggregate_ms: round(median(aggTimes)), result_prefixes: result.length } });
