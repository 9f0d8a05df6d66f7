// "Did you mean …?" for mistyped names (commands, options, configuration keys).
//
// editDistance is the Levenshtein distance (insertions, deletions and
// substitutions each cost 1). suggest returns the closest candidate when it is
// close enough to be a plausible typo: at most a third of the longer name's
// length away (and at least 1 edit allowed), or when one name is a prefix of
// the other. Ties go to the candidate listed first. Pure: no IO.

/** Levenshtein distance between `a` and `b`. */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** The candidate most like `word`, or undefined when none is close. */
export function suggest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const lower = word.toLowerCase();
  for (const candidate of candidates) {
    const c = candidate.toLowerCase();
    const d = editDistance(lower, c);
    const limit = Math.max(1, Math.floor(Math.max(lower.length, c.length) / 3));
    const prefix = lower.length >= 3 && (c.startsWith(lower) || lower.startsWith(c));
    if ((d <= limit || prefix) && d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

/** ` (did you mean "x"?)`, or "" when nothing is close; `quote` formats the candidate. */
export function didYouMean(word: string, candidates: Iterable<string>, quote: (s: string) => string = (s) => JSON.stringify(s)): string {
  const s = suggest(word, candidates);
  return s === undefined ? '' : ` (did you mean ${quote(s)}?)`;
}
