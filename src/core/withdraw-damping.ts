// Damping of mass withdrawals (pure): when a large share of the cluster's
// advertisements vanish at once, the cause is on etcd's side (every lease
// expired together after an etcd pause or a lost quorum), not every node
// dying; peers keep those routes for a bounded grace while the nodes
// re-register, as BGP graceful restart keeps a restarting peer's routes.
//
// Rule: every vanished advertisement is held `windowMs`. Withdrawals that
// start within `windowMs` of the first one form an event; when an event
// reaches `massMin` withdrawals and `massShare` of the advertisers known when
// it began, it is a mass withdrawal: all its withdrawals, and any that
// follow until it ends, are held until `graceMs` after its first one. A node
// that advertises again is released from its hold (no route ever changed).
// What is still held when its time comes is withdrawn. A mass event ends
// when its grace does or when none of its nodes is held any more (all came
// back): a node that dies after that is judged on its own.
//
// Invariants:
//  * A withdrawal that is not part of a mass event takes effect `windowMs`
//    after it arrives; one that is, at most `graceMs` after the event began.
//    Nothing is held longer.
//  * Time is passed in; no timers, no IO.

export interface DampingPolicy {
  /** Every withdrawal is held this long (ms) while the event it starts or joins is counted. */
  readonly windowMs: number;
  /** A mass event: at least this share (0..1] of the advertisers known at its start… */
  readonly massShare: number;
  /** …and at least this many withdrawals. */
  readonly massMin: number;
  /** How long (ms) from its first withdrawal a mass event's withdrawals are held; 0 turns damping off. */
  readonly graceMs: number;
}

export const DEFAULT_DAMPING: Omit<DampingPolicy, 'graceMs'> = { windowMs: 300, massShare: 0.5, massMin: 2 };

interface DampingEvent {
  readonly start: number;
  /** Advertisers known when the event began (the vanished ones included). */
  readonly known: number;
  count: number;
  /** When the grace of a mass event ends; undefined while it is not one. */
  massUntil: number | undefined;
}

interface Held<A> {
  readonly last: A;
  due: number;
  readonly event: DampingEvent;
}

/** What a mass event looked like when it was declared. */
export interface MassEvent {
  readonly withdrawn: number;
  readonly known: number;
  readonly until: number;
}

export class WithdrawDamping<A> {
  private readonly holds = new Map<string, Held<A>>();
  private event: DampingEvent | undefined;

  constructor(readonly policy: DampingPolicy) {}

  get enabled(): boolean {
    return this.policy.graceMs > 0;
  }

  /**
   * `node`'s advertisement `last` vanished at `now`, `known` advertisers being
   * known just before. Returns the mass event this withdrawal made one, if it did.
   */
  vanish(node: string, last: A, now: number, known: number): MassEvent | undefined {
    const p = this.policy;
    let ev = this.event;
    const over = ev === undefined || (ev.massUntil === undefined ? now - ev.start > p.windowMs : now >= ev.massUntil);
    if (over) ev = this.event = { start: now, known: Math.max(known, 1), count: 0, massUntil: undefined };
    const event = ev as DampingEvent;
    const had = this.holds.get(node);
    if (had === undefined || had.event !== event) event.count++;
    this.holds.set(node, { last: had?.last ?? last, due: event.massUntil ?? now + p.windowMs, event });
    if (event.massUntil === undefined && event.count >= p.massMin && event.count >= p.massShare * event.known && this.enabled) {
      event.massUntil = event.start + p.graceMs;
      for (const h of this.holds.values()) if (h.event === event) h.due = Math.max(h.due, event.massUntil);
      return { withdrawn: event.count, known: event.known, until: event.massUntil };
    }
    return undefined;
  }

  /** `node` advertises again: its hold ends with no withdrawal. Whether it was held. */
  back(node: string): boolean {
    const had = this.holds.get(node);
    if (had === undefined) return false;
    this.holds.delete(node);
    this.endIfSettled(had.event);
    return true;
  }

  /** A mass event whose nodes have all come back (or been withdrawn) is over: the next withdrawal is judged afresh. */
  private endIfSettled(event: DampingEvent): void {
    if (this.event !== event || event.massUntil === undefined) return;
    for (const h of this.holds.values()) if (h.event === event) return;
    this.event = undefined;
  }

  /** Held advertisements: node → the advertisement it had. */
  held(): ReadonlyMap<string, A> {
    return new Map([...this.holds].map(([node, h]) => [node, h.last]));
  }

  isHeld(node: string): boolean {
    return this.holds.has(node);
  }

  /** Withdrawals due at `now`: they leave the hold and are to be applied. */
  due(now: number): string[] {
    const out: string[] = [];
    for (const [node, h] of this.holds) {
      if (h.due <= now) {
        out.push(node);
        this.holds.delete(node);
      }
    }
    if (this.event !== undefined) this.endIfSettled(this.event);
    return out.sort();
  }

  /** When the next held withdrawal is due, or undefined when none is held. */
  nextDue(): number | undefined {
    let next: number | undefined;
    for (const h of this.holds.values()) if (next === undefined || h.due < next) next = h.due;
    return next;
  }
}
