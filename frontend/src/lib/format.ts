/** Formatting shared by the storefront and the console. */

export interface Money {
  amount: number
  currency: string
}

/** `1999 EUR` → `€19.99` in the buyer's locale (minor units, two decimals for the usual currencies). */
export function formatMoney(m: Money, locale?: string): string {
  try {
    const fmt = new Intl.NumberFormat(locale, { style: 'currency', currency: m.currency })
    const digits = fmt.resolvedOptions().maximumFractionDigits ?? 2
    return fmt.format(m.amount / 10 ** digits)
  } catch {
    return `${(m.amount / 100).toFixed(2)} ${m.currency}`
  }
}

/** A duration in ms as `2 d 03:04:05`, `03:04:05` or `04:05` (never negative). */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.ceil(ms / 1000))
  const days = Math.floor(total / 86_400)
  const h = Math.floor((total % 86_400) / 3600)
  const m = Math.floor((total % 3600) / 60)
  const s = total % 60
  const pad = (n: number) => String(n).padStart(2, '0')
  const clock = h > 0 || days > 0 ? `${pad(h)}:${pad(m)}:${pad(s)}` : `${pad(m)}:${pad(s)}`
  return days > 0 ? `${days} d ${clock}` : clock
}

/** An RFC 3339 instant in the reader's locale and time zone. */
export function formatInstant(iso: string, locale?: string): string {
  const t = Date.parse(iso)
  if (Number.isNaN(t)) return iso
  return new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'short' }).format(t)
}
