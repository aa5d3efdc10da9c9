/**
 * RFC 9457 problem documents as the server really sends them.
 *
 * The OpenAPI document declares every error as `application/problem+json` with
 * the `Problem` schema: five members, the extension members some codes add
 * (`available`, `max_per_order`, `sale_starts_at`, `sku`, `order_id`, `limit`, …),
 * and `Retry-After` on 429 and 503. A proxy or a lost connection can still answer
 * something else, so this module reads whatever body came back and checks its
 * shape at run time.
 */

/** The members every problem has, plus the optional ones clients rely on. */
export interface Problem {
  type: string
  title: string
  status: number
  detail: string
  /** The stable code (`out-of-stock`, …); `network` when no answer came at all. */
  code: string
  available?: number
  max_per_order?: number
  sale_starts_at?: string
  sku?: string
  order_id?: string
  limit?: string
  max?: number
  committed?: number
}

/** A failed API call: the problem, and `Retry-After` in seconds if the server gave one. */
export class ApiProblem extends Error {
  constructor(
    readonly problem: Problem,
    readonly retryAfterSecs: number | null,
  ) {
    super(`${problem.status} ${problem.code}: ${problem.detail}`)
    this.name = 'ApiProblem'
  }

  get code(): string {
    return this.problem.code
  }

  get status(): number {
    return this.problem.status
  }
}

const PREFIX = 'urn:flashcore:problem:'

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined
}

/** `Retry-After` as seconds (delta-seconds or an HTTP date), or null. */
export function parseRetryAfter(header: string | null, now: number = Date.now()): number | null {
  if (header === null || header.trim() === '') return null
  const secs = Number(header)
  if (Number.isFinite(secs)) return Math.max(0, Math.ceil(secs))
  const at = Date.parse(header)
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000))
}

/**
 * Turns an error body (already JSON-parsed, or text, or nothing) and its response
 * into a [`Problem`]. A body that is not a problem document still gives one, with
 * a code made from the status, so callers handle one shape.
 */
export function toProblem(body: unknown, response: Pick<Response, 'status' | 'statusText'>): Problem {
  const status = response.status
  const fallback: Problem = {
    type: 'about:blank',
    title: response.statusText || `HTTP ${status}`,
    status,
    detail: typeof body === 'string' && body.length > 0 && body.length < 500 ? body : '',
    code: `http-${status}`,
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return fallback
  const b = body as Record<string, unknown>
  const type = str(b.type)
  const code = str(b.code) ?? (type?.startsWith(PREFIX) ? type.slice(PREFIX.length) : undefined)
  if (!code) return fallback
  const p: Problem = {
    type: type ?? `${PREFIX}${code}`,
    title: str(b.title) ?? fallback.title,
    status: num(b.status) ?? status,
    detail: str(b.detail) ?? '',
    code,
  }
  const available = num(b.available)
  if (available !== undefined) p.available = available
  const maxPerOrder = num(b.max_per_order)
  if (maxPerOrder !== undefined) p.max_per_order = maxPerOrder
  const startsAt = str(b.sale_starts_at)
  if (startsAt !== undefined) p.sale_starts_at = startsAt
  const sku = str(b.sku)
  if (sku !== undefined) p.sku = sku
  const orderId = str(b.order_id)
  if (orderId !== undefined) p.order_id = orderId
  const limit = str(b.limit)
  if (limit !== undefined) p.limit = limit
  const max = num(b.max)
  if (max !== undefined) p.max = max
  const committed = num(b.committed)
  if (committed !== undefined) p.committed = committed
  return p
}

/** The problem for a request that got no answer (offline, DNS, connection reset). */
export function networkProblem(): Problem {
  return {
    type: `${PREFIX}network`,
    title: 'No connection',
    status: 0,
    detail: 'The request did not reach the server.',
    code: 'network',
  }
}
