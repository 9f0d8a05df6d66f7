// Split of one VPC route table's entry budget among the subnets sharing it.
//
// The split is a function of shared state only (subnet ids, node counts and
// claimed blocks, never health), so every subnet's advertiser computes the same
// split on its own. Every subnet that needs entries gets one before any gets a
// second; the rest is split in proportion to node counts (largest remainder,
// ties by subnet id), never beyond a subnet's demand (the entry count that
// gives it zero extra hop); what a capped subnet cannot use is split again.
// Invariants: Σ shares ≤ budget; 0 ≤ share ≤ demand; a subnet gets 0 only when
// the budget is smaller than the number of subnets needing entries, and then
// the ones that go without are the last in subnet-id order.

export interface BudgetDemand {
  readonly subnet: string;
  /** Nodes of the subnet that own blocks: the weight of its share. */
  readonly nodes: number;
  /** Entries beyond which the subnet gains nothing; 0 when it needs none. */
  readonly demand: number;
}

export interface BudgetSplit {
  /** Entries per subnet needing any (demand ≥ 1). */
  readonly shares: ReadonlyMap<string, number>;
  /** Subnets needing entries that got none, in id order. */
  readonly starved: readonly string[];
}

/** Plain code-unit order: the same on every host, whatever its locale. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function splitBudget(budget: number, demands: readonly BudgetDemand[]): BudgetSplit {
  const needy = demands.filter((d) => d.demand > 0).sort((a, b) => compareText(a.subnet, b.subnet));
  const share: number[] = needy.map((_, i) => (i < budget ? 1 : 0));
  const weight = needy.map((d) => Math.max(1, d.nodes));
  let rest = budget - needy.length;
  for (;;) {
    const open = needy.flatMap((d, i) => ((share[i] as number) < d.demand ? [i] : []));
    if (rest <= 0 || open.length === 0) break;
    const total = open.reduce((sum, i) => sum + (weight[i] as number), 0);
    const quota = open.map((i) => ({
      i,
      whole: Math.floor((rest * (weight[i] as number)) / total),
      remainder: (rest * (weight[i] as number)) % total,
    }));
    let left = rest - quota.reduce((sum, q) => sum + q.whole, 0);
    // open is in id order and sort is stable: equal remainders go by subnet id.
    for (const q of [...quota].sort((a, b) => b.remainder - a.remainder)) {
      if (left === 0) break;
      q.whole += 1;
      left -= 1;
    }
    for (const q of quota) {
      const add = Math.min(q.whole, (needy[q.i] as BudgetDemand).demand - (share[q.i] as number));
      share[q.i] = (share[q.i] as number) + add;
      rest -= add;
    }
  }
  return {
    shares: new Map(needy.map((d, i) => [d.subnet, share[i] as number])),
    starved: needy.filter((_, i) => share[i] === 0).map((d) => d.subnet),
  };
}
