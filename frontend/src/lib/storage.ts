/** JSON in Web Storage, tolerant of a missing or full storage and of corrupt values. */

export function readJson<T>(storage: Storage | undefined, key: string, guard: (v: unknown) => v is T): T | null {
  try {
    const raw = storage?.getItem(key)
    if (raw == null) return null
    const v: unknown = JSON.parse(raw)
    return guard(v) ? v : null
  } catch {
    return null
  }
}

export function writeJson(storage: Storage | undefined, key: string, value: unknown): void {
  try {
    if (value === null || value === undefined) storage?.removeItem(key)
    else storage?.setItem(key, JSON.stringify(value))
  } catch {
    // storage full or disabled: the state simply does not survive a reload
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
