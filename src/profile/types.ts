import type { DeviceProfile } from '../types.js';

// The facts the profile adds on top of the DeviceProfile contract in src/types.ts. A Profile *is* a
// DeviceProfile (every consumer of the contract keeps working); code that wants the extra facts imports
// this type. Every field follows the contract's rule: unknown is absent, and `notes` says why.

/** CPUs that share a core type and a top frequency (one big.LITTLE cluster, or one cpufreq policy). */
export interface CpuCluster {
  /** Logical CPU numbers, e.g. [0, 1, 2, 3]. */
  cpus: number[];
  coreType?: string;
  maxMHz?: number;
  /** cpufreq scaling governor of these CPUs (e.g. 'ondemand', 'schedutil', 'performance'). */
  governor?: string;
}

/** One cache level as the kernel describes it; `instances` counts distinct copies across all CPUs. */
export interface CacheInfo {
  level: number;
  type: 'data' | 'instruction' | 'unified';
  /** Size of one instance. */
  sizeKB: number;
  instances?: number;
  /** How many logical CPUs share one instance. */
  sharedBy?: number;
}

export interface ThermalZone {
  zone: string;
  type?: string;
  tempC?: number;
}

/** Raspberry Pi firmware throttling flags (get_throttled): "now" bits and "since boot" bits. */
export interface ThrottleFlags {
  raw: string;
  underVoltage: boolean;
  frequencyCapped: boolean;
  throttled: boolean;
  softTempLimit: boolean;
  occurred: { underVoltage: boolean; frequencyCapped: boolean; throttled: boolean; softTempLimit: boolean };
  source: string;
}

export interface Accelerator {
  /** Stable short name, e.g. 'nvidia-jetson-gpu', 'tensorrt', 'hailo'. */
  name: string;
  kind: 'gpu' | 'npu' | 'library';
  /** Where it was seen (device node, library file). */
  evidence: string;
  version?: string;
  /** What edgetune can do with it today. */
  usable: string;
}

export interface ProviderInfo {
  name: string;
  /** Shipped inside onnxruntime-node's binary (a non-bundled one needs extra libraries). */
  bundled: boolean;
}

export interface Profile extends DeviceProfile {
  /** SoC from the device tree `compatible` list (e.g. 'BCM2712', 'Tegra234'). */
  soc?: string;
  /** Jetson Linux (L4T) release from /etc/nv_tegra_release, e.g. '36.4.3'. */
  l4t?: string;
  cpu: DeviceProfile['cpu'] & {
    clusters: CpuCluster[];
    caches: CacheInfo[];
    /** The governor when all clusters agree; per cluster otherwise. */
    governor?: string;
  };
  memory: DeviceProfile['memory'] & { swapTotalMB?: number; swapFreeMB?: number };
  /** Free space where edgetune keeps its state (candidates, journals): compressing needs room. */
  disk?: { path: string; freeMB: number; totalMB: number };
  thermal: DeviceProfile['thermal'] & {
    zones: ThermalZone[];
    throttleFlags?: ThrottleFlags;
    /** Jetson nvpmodel power mode, e.g. { name: 'MAXN', id: 0 }. */
    powerMode?: { name: string; id?: number };
  };
  acceleratorDetails: Accelerator[];
  runtime: DeviceProfile['runtime'] & { providerDetails?: ProviderInfo[] };
  /** How long the profile took (ms); the budget is 2 s. */
  costMs: number;
}
