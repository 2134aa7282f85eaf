import { errorMessage } from '../errors.js';

// systeminformation fills what the files did not give, on the live machine only (it always reads the real
// /proc, so it must not be mixed into a profile of a fixture tree). It reports unknowns as 0, -1 or null;
// those are turned into undefined here rather than passed on as numbers.

export interface SiNeeds {
  cpu: boolean;
  mem: boolean;
  os: boolean;
  temp: boolean;
}

export interface SiFacts {
  cpu?: { model?: string; vendor?: string; maxMHz?: number; flags?: string[] };
  mem?: { totalMB?: number; availableMB?: number };
  os?: string;
  tempC?: number;
  notes: string[];
}

const TIMEOUT_MS = 1500;

/** Resolves to undefined after `ms` (some probes shell out, e.g. to `sensors`, and may hang). */
async function within<T>(what: string, p: Promise<T>, notes: string[]): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((res) => {
    timer = setTimeout(() => {
      notes.push(`systeminformation ${what}: no answer within ${TIMEOUT_MS} ms`);
      res(undefined);
    }, TIMEOUT_MS);
    timer.unref();
  });
  try {
    return await Promise.race([p, timeout]);
  } catch (e) {
    notes.push(`systeminformation ${what}: ${errorMessage(e)}`);
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

const known = (n: number | null | undefined, min = 0): number | undefined => (typeof n === 'number' && Number.isFinite(n) && n > min ? n : undefined);

export async function systemFacts(needs: SiNeeds): Promise<SiFacts> {
  const notes: string[] = [];
  if (!needs.cpu && !needs.mem && !needs.os && !needs.temp) return { notes };
  const si = (await import('systeminformation')).default;
  const [cpu, mem, os, temp] = await Promise.all([
    needs.cpu ? within('cpu', si.cpu(), notes) : undefined,
    needs.mem ? within('mem', si.mem(), notes) : undefined,
    needs.os ? within('osInfo', si.osInfo(), notes) : undefined,
    needs.temp ? within('cpuTemperature', si.cpuTemperature(), notes) : undefined,
  ]);
  const facts: SiFacts = { notes };
  if (cpu) {
    const model = [cpu.manufacturer, cpu.brand].filter(Boolean).join(' ').trim();
    const maxGHz = known(cpu.speedMax);
    facts.cpu = {
      ...(model ? { model } : {}),
      ...(cpu.manufacturer ? { vendor: cpu.manufacturer } : {}),
      ...(maxGHz ? { maxMHz: Math.round(maxGHz * 1000) } : {}),
      ...(cpu.flags ? { flags: cpu.flags.split(/\s+/).filter(Boolean) } : {}),
    };
  }
  if (mem) {
    const total = known(mem.total);
    const avail = known(mem.available);
    facts.mem = {
      ...(total ? { totalMB: Math.round(total / 2 ** 20) } : {}),
      ...(avail ? { availableMB: Math.round(avail / 2 ** 20) } : {}),
    };
  }
  if (os) {
    const name = [os.distro, os.release].filter(Boolean).join(' ').trim();
    if (name) facts.os = os.kernel ? `${name} (kernel ${os.kernel})` : name;
  }
  if (temp) facts.tempC = known(temp.main, -60);
  return facts;
}
