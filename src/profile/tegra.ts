// Pure parsers for NVIDIA Jetson (Tegra) files and tools. Each returns undefined for text it cannot read,
// never a stand-in value.

/**
 * /etc/nv_tegra_release → the Jetson Linux (L4T) release, e.g.
 * "# R32 (release), REVISION: 7.6, GCID: …" → '32.7.6'; "# R36 (release), REVISION: 4.3, …" → '36.4.3'.
 * A bare "REVISION: 5" (seen on R32.5) gives '32.5'.
 */
export function parseNvTegraRelease(text: string): { l4t: string; board?: string } | undefined {
  const m = /#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)/i.exec(text);
  if (!m) return undefined;
  const board = /BOARD:\s*([^,\s]+)/i.exec(text)?.[1];
  return { l4t: `${m[1]}.${m[2].replace(/\.$/, '')}`, ...(board ? { board } : {}) };
}

/**
 * `nvpmodel -q` → the power mode. The output is "NV Power Mode: <name>" then the mode id on its own line;
 * without root it may add "NVPM ERROR" lines after them (the mode is still right), and newer releases may
 * print "NVPM WARN" lines first.
 */
export function parseNvpmodel(text: string): { name: string; id?: number } | undefined {
  const name = /NV Power Mode:\s*(\S+)/i.exec(text)?.[1];
  if (!name) return undefined;
  const after = text.slice(text.search(/NV Power Mode:/i)).split('\n').slice(1);
  const idLine = after.find((l) => /^\s*\d+\s*$/.test(l));
  return { name, ...(idLine !== undefined ? { id: Number(idLine.trim()) } : {}) };
}

export interface TegraStats {
  ramUsedMB?: number;
  ramTotalMB?: number;
  swapUsedMB?: number;
  swapTotalMB?: number;
  /** Per CPU: load % and MHz, or 'off' for a CPU the power mode parked. */
  cpus: Array<{ loadPct: number; mhz?: number } | 'off'>;
  gpuLoadPct?: number;
  gpuMHz?: number;
  /** Sensor name → °C (e.g. cpu, gpu, tj on Orin; CPU, GPU, PLL, PMIC on Nano). */
  tempsC: Record<string, number>;
  /** Rail name → current draw in mW. */
  powerMW: Record<string, number>;
}

/** One `tegrastats` line (any Jetson generation; an optional leading timestamp is skipped). */
export function parseTegrastats(line: string): TegraStats | undefined {
  if (!/\bRAM \d+\/\d+MB/.test(line)) return undefined;
  const out: TegraStats = { cpus: [], tempsC: {}, powerMW: {} };
  const ram = /\bRAM (\d+)\/(\d+)MB/.exec(line);
  if (ram) [out.ramUsedMB, out.ramTotalMB] = [Number(ram[1]), Number(ram[2])];
  const swap = /\bSWAP (\d+)\/(\d+)MB/.exec(line);
  if (swap) [out.swapUsedMB, out.swapTotalMB] = [Number(swap[1]), Number(swap[2])];
  const cpu = /\bCPU \[([^\]]*)\]/.exec(line);
  if (cpu) {
    for (const item of cpu[1].split(',')) {
      const t = item.trim();
      if (/^off$/i.test(t)) out.cpus.push('off');
      else {
        const m = /^(\d+)%(?:@(\d+))?$/.exec(t);
        if (m) out.cpus.push({ loadPct: Number(m[1]), ...(m[2] ? { mhz: Number(m[2]) } : {}) });
      }
    }
  }
  const gpu = /\bGR3D_FREQ (\d+)%(?:@\[?(\d+))?/.exec(line);
  if (gpu) {
    out.gpuLoadPct = Number(gpu[1]);
    if (gpu[2]) out.gpuMHz = Number(gpu[2]);
  }
  // PMIC@100C on older boards is a fixed placeholder the driver always reports, so it is left out.
  for (const m of line.matchAll(/\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b/g)) {
    if (m[1] !== 'PMIC') out.tempsC[m[1]] = Number(m[2]);
  }
  // Rails: "VDD_IN 5263mW/5263mW" (JetPack 5+) or "POM_5V_IN 900/943" (JetPack 4, mW implied).
  for (const m of line.matchAll(/\b((?:VDD|POM|VIN)_[A-Z0-9_]+) (\d+)(?:mW)?\/(\d+)(?:mW)?/g)) out.powerMW[m[1]] = Number(m[2]);
  return out;
}
