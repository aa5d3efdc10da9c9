import { describe, expect, it } from 'vitest'
import { ApiProblem, parseRetryAfter, toProblem } from '@/api/problem'
import { describeApiProblem, describeProblem } from '@/problems/messages'

const res = (status: number) => ({ status, statusText: '' })

describe('toProblem reads the body whatever the declared media type', () => {
  it('keeps the documented fields and the extra ones clients rely on', () => {
    const p = toProblem(
      { type: 'urn:flashcore:problem:out-of-stock', title: 'Out of stock', status: 409, detail: 'Only 3 of X can be had.', code: 'out-of-stock', sku: 'X', available: 3 },
      res(409),
    )
    expect(p).toMatchObject({ code: 'out-of-stock', status: 409, available: 3, sku: 'X' })
  })

  it('derives the code from the type when `code` is missing', () => {
    expect(toProblem({ type: 'urn:flashcore:problem:stock-lost', title: 't', status: 409 }, res(409)).code).toBe('stock-lost')
  })

  it('gives a problem for a body that is not one (text, HTML from a proxy, nothing)', () => {
    expect(toProblem('Bad Gateway', { status: 502, statusText: 'Bad Gateway' })).toMatchObject({ code: 'http-502', status: 502, detail: 'Bad Gateway' })
    expect(toProblem(undefined, res(500)).code).toBe('http-500')
    expect(toProblem([1, 2], res(400)).code).toBe('http-400')
  })

  it('drops extra members of the wrong type', () => {
    const p = toProblem({ code: 'out-of-stock', available: 'three' }, res(409))
    expect(p.available).toBeUndefined()
  })
})

describe('Retry-After', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('3')).toBe(3)
    expect(parseRetryAfter(null)).toBeNull()
    const now = Date.parse('2030-01-01T00:00:00Z')
    expect(parseRetryAfter('Tue, 01 Jan 2030 00:00:07 GMT', now)).toBe(7)
    expect(parseRetryAfter('soon')).toBeNull()
  })
})

describe('every problem code in words a buyer understands', () => {
  const p = (code: string, status: number, extra: Record<string, unknown> = {}) => toProblem({ code, status, title: code, detail: '', ...extra }, res(status))

  it('out of stock tells how many are left, or sold out', () => {
    expect(describeProblem(p('out-of-stock', 409, { available: 3 }))).toMatchObject({ headline: 'Only 3 units left', remedy: 'update-cart' })
    expect(describeProblem(p('out-of-stock', 409, { available: 1 })).headline).toBe('Only 1 unit left')
    expect(describeProblem(p('out-of-stock', 409, { available: 0 })).headline).toBe('Sold out')
  })

  it('limit exceeded names the limit', () => {
    expect(describeProblem(p('limit-exceeded', 409, { max_per_order: 2 })).headline).toBe('At most 2 per order')
  })

  it('sale not started says when', () => {
    const m = describeProblem(p('sale-not-started', 409, { sale_starts_at: '2030-01-02T10:00:00Z' }), null, 'en-GB')
    expect(m.headline).toBe('The sale has not started yet')
    expect(m.detail).toContain('2030')
  })

  it('stock lost and payment declined keep the buyer in control', () => {
    expect(describeProblem(p('stock-lost', 409, { sku: 'FLASH-SNEAKER-01' })).detail).toContain('FLASH-SNEAKER-01')
    expect(describeProblem(p('payment-declined', 402))).toMatchObject({ headline: 'Your payment was declined', remedy: 'change-payment' })
    expect(describeProblem(p('payment-declined', 402)).detail).toContain('cart is kept')
  })

  it('busy, rate limited and unavailable are retried after the server’s Retry-After', () => {
    for (const code of ['rate-limited', 'overloaded', 'unavailable', 'timeout', 'idempotency-unavailable', 'not-ready', 'standby']) {
      const m = describeApiProblem(new ApiProblem(p(code, code === 'rate-limited' ? 429 : 503), 4))
      expect(m.remedy, code).toBe('retry')
      expect(m.retryAfterSecs, code).toBe(4)
      expect(m.headline, code).not.toBe(code)
    }
  })

  it('a provider error is retryable even without Retry-After', () => {
    expect(describeProblem(p('payment-provider-error', 502))).toMatchObject({ remedy: 'retry', retryAfterSecs: 2 })
  })

  it('falls back to the server’s own title and detail for codes it does not know', () => {
    const m = describeProblem(toProblem({ code: 'brand-new', title: 'Brand new', detail: 'Something new.', status: 409 }, res(409)))
    expect(m).toMatchObject({ headline: 'Brand new', detail: 'Something new.', remedy: 'none' })
  })
})
