/**
 * Proxy selection state (SPEC §11) and the port that keeps it. The state is
 * shared by every run of an invocation and persists across invocations (the
 * original rebuilt it per process, so its round robin always began at the
 * first endpoint). The embedded store is one SQLite file in the state dir;
 * a Redis store (§12) implements the same port so workers share it.
 *
 * Nothing secret is in the state: endpoints are named by their index in the
 * pool, and sticky keys (which may come from a job's params) are hashed.
 */

/** One sticky assignment. */
export interface StickyEntry {
  /** Index of the endpoint the key is on; null after a rotation, until the key's next run. */
  index: number | null;
  /** Epoch ms when the assignment lapses; null: never. */
  expires_at: number | null;
  /** Endpoints this key was rotated off since its last assignment: its next assignment avoids them. */
  exclude: number[];
  /** Epoch ms of the key's last use, to evict the longest unused when the map is full. */
  used_at: number;
}

/** The selection state of one pool. */
export interface PoolState {
  /**
   * Identity of the endpoint list the state was made for (hash of protocols,
   * hosts, ports, users: no password). A changed list starts a fresh state,
   * since its indices no longer mean the same endpoints.
   */
  fingerprint: string;
  /** Round robin: index of the next endpoint to try. */
  cursor: number;
  /** Epoch ms each endpoint was last selected (0: never), by index. */
  last_used: number[];
  /** Indices selected most recently, newest last (at most the pool's size). */
  recent: number[];
  /** Endpoints the next round_robin or random selection skips: rotated off or failed since. */
  avoid: number[];
  /** Sticky assignments by hashed key. */
  sticky: Record<string, StickyEntry>;
  /** Selections made, ever (for `inspect proxy`). */
  selections: number;
  /** Epoch ms of the last selection; null: none yet. */
  last_used_at: number | null;
}

/**
 * Where selection state lives. Every change is one atomic read-modify-write
 * of one pool's state, so concurrent selectors (runs in parallel, other
 * invocations, other workers) never pick from the same stale state.
 */
export interface ProxyStateStore {
  /** Human-readable location (a file path, a Redis key prefix) for messages and `inspect proxy`. */
  readonly location: string;
  /**
   * Applies `change` to the pool's state atomically and stores what it returns.
   * `change` must be pure: a store may call it again after a conflict.
   */
  update<T>(pool: string, change: (current: PoolState | undefined) => { state: PoolState; result: T }): Promise<T>;
  /** The pool's stored state, or undefined when it was never used. Reads only. */
  read(pool: string): Promise<PoolState | undefined>;
  close(): Promise<void>;
}
