// A fleet of SIMULATED devices in one process, for tests, demos and the scale bench (scripts/fleet-sim.ts,
// scripts/bench-fleet.ts). Each device has its own MQTT connection and its own state folder.
import type { Target } from '../../types.js';
import type { Logger } from '../../agent/log.js';
import type { DeployedDoc } from '../contract.js';
import { SIM_KINDS } from './fake.js';
import { SimDevice, simStateDir } from './device.js';
import type { SimBehaviour } from './handlers.js';

const SHORT: Record<string, string> = { 'raspberry-pi-4': 'rpi4', 'raspberry-pi-5': 'rpi5', 'jetson-orin-nano': 'orin', 'x86_64-avx2': 'x86' };

export interface SimFleetOptions {
  url: string;
  fleet: string;
  count: number;
  /** Simulated boards, cycled over the devices (default: all four). */
  kinds?: string[];
  prefix?: string;
  /** Parent folder of every device's state folder. */
  stateRoot: string;
  behaviour: SimBehaviour;
  /** Per-device changes, by device id. */
  overrides?: Record<string, Partial<SimBehaviour>>;
  /** Target files: a device without explicit candidates tunes over its target's space. */
  targets?: Target[];
  /** What every device runs at start (published retained as deployed). */
  deployed?: DeployedDoc;
  log?: Logger;
  reconnect?: { minMs: number; maxMs: number };
}

/** Device ids: `<prefix>-<board>-<n>`, e.g. sim-rpi4-0007; the board part makes globs like `sim-rpi4-*` useful. */
export function simDeviceIds(count: number, kinds: string[], prefix = 'sim'): Array<{ id: string; kind: string }> {
  const width = Math.max(4, String(count).length);
  return Array.from({ length: count }, (_, i) => {
    const kind = kinds[i % kinds.length];
    return { id: `${prefix}-${SHORT[kind] ?? kind}-${String(i + 1).padStart(width, '0')}`, kind };
  });
}

export class SimFleet {
  readonly devices: SimDevice[] = [];

  constructor(opts: SimFleetOptions) {
    const kinds = opts.kinds ?? Object.keys(SIM_KINDS);
    for (const k of kinds) if (!SIM_KINDS[k]) throw new RangeError(`unknown simulated board '${k}' (known: ${Object.keys(SIM_KINDS).join(', ')})`);
    for (const { id, kind } of simDeviceIds(opts.count, kinds, opts.prefix)) {
      const k = SIM_KINDS[kind];
      this.devices.push(new SimDevice({
        url: opts.url, fleet: opts.fleet, device: id, kind: k,
        behaviour: { ...opts.behaviour, ...opts.overrides?.[id] },
        stateDir: simStateDir(opts.stateRoot, id),
        target: opts.targets?.find((t) => t.name === k.target),
        deployed: opts.deployed, log: opts.log, reconnect: opts.reconnect,
      }));
    }
  }

  get(id: string): SimDevice | undefined {
    return this.devices.find((d) => d.id === id);
  }

  /** Starts every device (in slices, so a thousand connections do not hit the broker in one burst) and waits until all are connected. */
  async start(opts: { signal?: AbortSignal; slice?: number } = {}): Promise<void> {
    const slice = opts.slice ?? 100;
    for (let i = 0; i < this.devices.length; i += slice) {
      const part = this.devices.slice(i, i + slice);
      await Promise.all(part.map((d) => d.start()));
      await abortable(Promise.all(part.map((d) => d.waitConnected())), opts.signal);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.devices.map((d) => d.stop().catch(() => {})));
  }
}

/** One abort listener for a whole slice (not one per device: a thousand would trip Node's leak warning). */
function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
