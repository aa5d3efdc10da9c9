/** A fake API behind `fetch` for store tests: routes by method and path, records every request. */
import { vi } from 'vitest'

export interface Seen {
  method: string
  path: string
  headers: Headers
  body: unknown
}

export type Handler = (req: Seen) => Response | Promise<Response>

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', date: new Date().toUTCString(), ...headers },
  })
}

/** A problem document as the server sends it: `application/problem+json`. */
export function problem(status: number, code: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): Response {
  return new Response(
    JSON.stringify({ type: `urn:flashcore:problem:${code}`, title: code, status, detail: `${code} detail`, code, ...extra }),
    { status, headers: { 'content-type': 'application/problem+json', ...headers } },
  )
}

export function fakeServer(handler: Handler): { seen: Seen[] } {
  const seen: Seen[] = []
  vi.stubGlobal('fetch', async (input: Request) => {
    const url = new URL(input.url)
    const text = input.body ? await input.text() : ''
    const req: Seen = { method: input.method, path: url.pathname + url.search, headers: input.headers, body: text ? JSON.parse(text) : undefined }
    seen.push(req)
    return handler(req)
  })
  return { seen }
}

export function emptyCart(id: string) {
  return { cart_id: id, status: 'open', order_id: null, lines: [], item_count: 0, total: null }
}

export function cartWith(id: string, sku: string, quantity: number, holdExpiresAt = new Date(Date.now() + 600_000).toISOString()) {
  const unit = { amount: 1999, currency: 'EUR' }
  return {
    cart_id: id,
    status: 'open',
    order_id: null,
    lines: [{ sku, title: sku, quantity, unit_price: unit, line_total: { amount: 1999 * quantity, currency: 'EUR' }, hold_expires_at: holdExpiresAt }],
    item_count: quantity,
    total: { amount: 1999 * quantity, currency: 'EUR' },
  }
}

export function order(id: string, cartId: string) {
  return {
    order_id: id,
    cart_id: cartId,
    status: 'paid',
    lines: [],
    total: { amount: 3998, currency: 'EUR' },
    email: null,
    payment_ref: 'pay_1',
    created_at: new Date().toISOString(),
  }
}
