// Typed events with per-listener error isolation (STYLE 5): one throwing listener never stops the others
// or the emitter. Listeners are registered under an owner so the owner's stop() removes all of its own.

export type EventMap = Record<string, unknown[]>;
type Listener<A extends unknown[]> = (...args: A) => void | Promise<void>;

export class TypedEvents<M extends EventMap> {
  private readonly listeners = new Map<keyof M, Array<{ fn: Listener<any>; owner?: object }>>();

  constructor(private readonly onListenerError: (event: string, error: unknown) => void = () => {}) {}

  on<K extends keyof M>(event: K, fn: Listener<M[K]>, owner?: object): () => void {
    const list = this.listeners.get(event) ?? [];
    const entry = { fn, owner };
    list.push(entry);
    this.listeners.set(event, list);
    return () => {
      const l = this.listeners.get(event);
      if (l) this.listeners.set(event, l.filter((e) => e !== entry));
    };
  }

  /** Removes every listener registered with this owner. */
  offOwner(owner: object): void {
    for (const [k, l] of this.listeners) this.listeners.set(k, l.filter((e) => e.owner !== owner));
  }

  emit<K extends keyof M>(event: K, ...args: M[K]): void {
    for (const { fn } of [...(this.listeners.get(event) ?? [])]) {
      try {
        const r = fn(...args);
        if (r && typeof (r as Promise<void>).catch === 'function') {
          (r as Promise<void>).catch((e) => this.onListenerError(String(event), e));
        }
      } catch (e) {
        this.onListenerError(String(event), e);
      }
    }
  }
}
