import type { Static, TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

/** Every problem as `path: message`, the form users see (zigbee2mqtt style). */
export function schemaErrors(schema: TSchema, value: unknown): string[] {
  return [...Value.Errors(schema, value)].map((e) => `${e.path || '/'}: ${e.message}`);
}

/** Fills defaults from the schema, then checks; returns the typed value or the list of problems. */
export function parseWithSchema<T extends TSchema>(
  schema: T,
  value: unknown,
): { ok: true; value: Static<T> } | { ok: false; errors: string[] } {
  const withDefaults = Value.Default(schema, structuredClone(value ?? {}));
  const errors = schemaErrors(schema, withDefaults);
  if (errors.length) return { ok: false, errors };
  return { ok: true, value: withDefaults as Static<T> };
}
