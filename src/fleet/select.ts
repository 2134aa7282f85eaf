// Which devices a fleet command addresses: `--devices a,b,rpi-*` (ids or globs), `--target <name>` or `--all`.
import { randomBytes } from 'node:crypto';
import { UsageError } from '../errors.js';
import type { DeviceRecord } from './view.js';

export interface Selection {
  /** Device ids or globs (`*` any run of characters, `?` one character); comma-separated lists are split. */
  devices?: string[];
  target?: string;
  all?: boolean;
}

/** A glob over device ids → a RegExp anchored at both ends. */
export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

export function describeSelection(sel: Selection): string {
  if (sel.all) return 'all devices';
  if (sel.target) return `target ${sel.target}`;
  return `devices ${splitList(sel.devices ?? []).join(', ')}`;
}

function splitList(items: string[]): string[] {
  return items.flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
}

/**
 * The devices a selection names, in id order. Exactly one of devices/target/all must be given. A plain id
 * (no glob characters) that no device has published is still returned as an unknown device, so the caller
 * can say so instead of silently skipping it.
 */
export function selectDevices(records: DeviceRecord[], sel: Selection): { selected: DeviceRecord[]; unknown: string[] } {
  const given = [sel.devices?.length ? 'devices' : '', sel.target ? 'target' : '', sel.all ? 'all' : ''].filter(Boolean);
  if (given.length !== 1) {
    throw new UsageError(`name the devices with exactly one of --devices <ids|glob>, --target <name> or --all (got ${given.length ? given.map((g) => `--${g}`).join(' and ') : 'none'})`);
  }
  const sorted = [...records].sort((a, b) => a.device.localeCompare(b.device));
  if (sel.all) return { selected: sorted, unknown: [] };
  if (sel.target) return { selected: sorted.filter((r) => r.target === sel.target), unknown: [] };
  const patterns = splitList(sel.devices ?? []);
  const unknown: string[] = [];
  const hit = new Set<DeviceRecord>();
  for (const p of patterns) {
    const isGlob = /[*?]/.test(p);
    const re = globToRegExp(p);
    const matches = sorted.filter((r) => re.test(r.device));
    if (!matches.length && !isGlob) unknown.push(p);
    for (const m of matches) hit.add(m);
  }
  return { selected: sorted.filter((r) => hit.has(r)), unknown };
}

/** A fresh run id, usable as an MQTT topic level and a job id: `f` + UTC time + random suffix. */
export function newRunId(prefix = 'f', now = new Date()): string {
  const ts = now.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
  return `${prefix}${ts}-${randomBytes(3).toString('hex')}`;
}
