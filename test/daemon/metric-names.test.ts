// The sample Grafana dashboard (examples/grafana/trellis-dashboard.json) and
// alert rules (examples/prometheus/trellis-alerts.yaml) name only metrics that
// trellisd exports: every trellis_*, process_* and nodejs_* name in their
// queries must be a series of trellisd's registry with all its components
// registered (core, IPAM, VPC advertiser), histogram series included.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { Metrics } from '../../daemon/metrics.js';
import { VpcMetrics } from '../../daemon/vpc/metrics.js';
import { ROOT } from '../../lab/trellis.js';

const DASHBOARD = join(ROOT, 'examples', 'grafana', 'trellis-dashboard.json');
const ALERTS = join(ROOT, 'examples', 'prometheus', 'trellis-alerts.yaml');

/** Every series name the registry's text exposition can hold (histograms: _bucket, _sum, _count). */
async function exported(): Promise<Set<string>> {
  const metrics = new Metrics();
  new VpcMetrics(metrics.registry);
  const text = await metrics.registry.metrics();
  const names = new Set<string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [name, type] = [m[1]!, m[2]!];
    names.add(name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(name + s);
  }
  return names;
}

/** The metric names a PromQL expression refers to (ours and the standard process ones). */
function referenced(expr: string): string[] {
  return [...expr.matchAll(/\b((?:trellis|process|nodejs)_[a-z0-9_]+)\b/g)].map((m) => m[1]!);
}

/** `name: [where it is used]` for each name that is not exported. */
function missing(uses: ReadonlyArray<[string, string]>, names: ReadonlySet<string>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [where, expr] of uses) for (const n of referenced(expr)) if (!names.has(n)) (out[n] ??= []).push(where);
  return out;
}

function dashboardQueries(): Array<[string, string]> {
  const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
    templating: { list: Array<{ name: string; definition?: string }> };
  };
  return [
    ...dash.panels.flatMap((p) => (p.targets ?? []).map((q): [string, string] => [`panel "${p.title}"`, q.expr])),
    ...dash.templating.list.flatMap((v): Array<[string, string]> => (v.definition === undefined ? [] : [[`variable ${v.name}`, v.definition]])),
  ];
}

interface Rule {
  alert?: string;
  expr?: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function alertRules(): Rule[] {
  const doc = parse(readFileSync(ALERTS, 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> };
  return doc.groups.flatMap((g) => g.rules);
}

t.test('the checker itself: a name that is not exported is reported', async (t) => {
  const names = await exported();
  t.ok(names.has('trellis_ipam_allocation_duration_seconds_bucket'), 'histogram series are known');
  t.ok(names.has('process_cpu_seconds_total'), 'the standard process metrics are known');
  t.same(missing([['here', 'rate(trellis_etcd_errors[5m]) + trellis_ready']], names), { trellis_etcd_errors: ['here'] });
});

t.test('every metric the dashboard queries is exported', async (t) => {
  const names = await exported();
  const queries = dashboardQueries();
  const used = new Set(queries.flatMap(([, e]) => referenced(e)));
  t.ok(used.size >= 25, `${used.size} distinct metrics queried`);
  for (const family of ['trellis_ipam_', 'trellis_vpc_', 'trellis_etcd_', 'process_', 'nodejs_']) {
    t.ok([...used].some((n) => n.startsWith(family)), `a ${family}* panel`);
  }
  t.same(missing(queries, names), {}, 'no name the daemon does not export');
});

t.test('every metric the alert rules use is exported, and every rule is complete', async (t) => {
  const names = await exported();
  const rules = alertRules();
  t.ok(rules.length >= 8, `${rules.length} rules`);
  for (const r of rules) {
    t.ok(r.alert !== undefined && r.expr !== undefined && referenced(r.expr).length > 0, `${r.alert}: a name and an expression on trellisd's metrics`);
    t.ok(['critical', 'warning', 'info'].includes(r.labels?.severity ?? ''), `${r.alert}: a severity`);
    t.ok((r.annotations?.summary ?? '') !== '', `${r.alert}: a summary`);
  }
  const alerts = new Set(rules.map((r) => r.alert));
  for (const a of ['TrellisNodeNotReady', 'TrellisLeaseLost', 'TrellisRouteConflicts', 'TrellisEtcdErrorsRising', 'TrellisIpamExhausted', 'TrellisVpcBudgetShortage']) {
    t.ok(alerts.has(a), `alert ${a}`);
  }
  t.same(missing(rules.map((r): [string, string] => [`alert ${r.alert}`, r.expr ?? '']), names), {}, 'no name the daemon does not export');
});
