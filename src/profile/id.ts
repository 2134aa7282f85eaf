import { createHash } from 'node:crypto';

/**
 * A stable device id, from the best source available:
 *  1. `m-` + 16 hex of sha256("edgetune:" + /etc/machine-id). machine-id is unique per install and survives
 *     reboots; machine-id(5) asks that it not be exposed raw, hence the app-specific hash.
 *  2. `s-` + 16 hex of the hashed board serial (Raspberry Pi cpuinfo `Serial`), unique per board.
 *  3. `h-<hostname>`: last resort, since fleets of Pis often all keep the default hostname "raspberrypi".
 */
export function deviceId(src: { machineId?: string; serial?: string; hostname?: string }): { id: string; note?: string } {
  const hash = (s: string) => createHash('sha256').update(`edgetune:${s}`).digest('hex').slice(0, 16);
  const machineId = src.machineId?.trim();
  if (machineId && /^[0-9a-f]{32}$/i.test(machineId)) return { id: `m-${hash(machineId.toLowerCase())}` };
  const serial = src.serial?.trim();
  if (serial && !/^0+$/.test(serial)) {
    return { id: `s-${hash(serial.toLowerCase())}`, note: 'id: /etc/machine-id unreadable; derived from the board serial' };
  }
  const host = src.hostname?.trim();
  if (host) {
    return { id: `h-${host}`, note: `id: no machine-id or board serial; derived from hostname "${host}", which other devices may share` };
  }
  return { id: 'unknown', note: 'id: no machine-id, board serial or hostname found' };
}
