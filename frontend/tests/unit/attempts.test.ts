import { describe, expect, it } from 'vitest'
import { AttemptKeys, attemptFingerprint, type Attempt } from '@/lib/attempts'

function counter() {
  let n = 0
  return () => `key-${++n}`
}

describe('one Idempotency-Key per checkout attempt', () => {
  const body = { payment: { token: 'tok_visa' } }
  const fp = attemptFingerprint('cart-1', body)

  it('reuses the key across retries of the same attempt after retryable outcomes', () => {
    const keys = new AttemptKeys(undefined, counter())
    const first = keys.keyFor(fp)
    for (const outcome of ['network', 'payment-provider-error', 'unavailable', 'rate-limited', 'idempotency-key-in-use', 'timeout']) {
      keys.settle(outcome)
      expect(keys.keyFor(fp), outcome).toBe(first)
    }
  })

  it('starts a new attempt after a final outcome', () => {
    const keys = new AttemptKeys(undefined, counter())
    const first = keys.keyFor(fp)
    keys.settle('payment-declined')
    const second = keys.keyFor(fp)
    expect(second).not.toBe(first)
    keys.settle(null)
    expect(keys.pending()).toBeNull()
    expect(keys.keyFor(fp)).not.toBe(second)
  })

  it('a changed body is another attempt (the server would refuse the old key for it)', () => {
    const keys = new AttemptKeys(undefined, counter())
    const first = keys.keyFor(fp)
    keys.settle('payment-provider-error')
    expect(keys.keyFor(attemptFingerprint('cart-1', { payment: { token: 'tok_mastercard' } }))).not.toBe(first)
  })

  it('keeps the pending attempt in its store, so a reload retries with the same key', () => {
    let saved: Attempt | null = null
    const store = { load: () => saved, save: (a: Attempt | null) => { saved = a } }
    const before = new AttemptKeys(store, counter())
    const key = before.keyFor(fp)
    before.settle('network')
    const after = new AttemptKeys(store, () => 'fresh')
    expect(after.keyFor(fp)).toBe(key)
  })

  it('uses random UUIDs by default', () => {
    const k = new AttemptKeys().keyFor(fp)
    expect(k).toMatch(/^[0-9a-f-]{36}$/)
  })
})
