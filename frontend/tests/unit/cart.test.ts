import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ApiProblem } from '@/api/problem'
import { CART_STORAGE_KEY, useCartStore } from '@/stores/cart'
import { cartWith, emptyCart, fakeServer, json, order, problem } from './fakeServer'

beforeEach(() => {
  localStorage.clear()
  setActivePinia(createPinia())
})
afterEach(() => vi.unstubAllGlobals())

/** A fresh Pinia, as after a page reload (localStorage kept). */
function reload() {
  setActivePinia(createPinia())
  return useCartStore()
}

describe('cart persistence', () => {
  it('opens a cart on the first add and sends its token on every cart call', async () => {
    const { seen } = fakeServer((r) => {
      if (r.method === 'POST' && r.path === '/v1/carts') return json(201, { cart_id: 'c1', token: 't1', cart: emptyCart('c1') })
      if (r.method === 'PUT') return json(200, cartWith('c1', 'FLASH-SNEAKER-01', (r.body as { quantity: number }).quantity))
      return json(404, {})
    })
    const cart = useCartStore()
    await cart.setQuantity('FLASH-SNEAKER-01', 2)
    expect(cart.itemCount).toBe(2)
    const put = seen.find((r) => r.method === 'PUT')!
    expect(put.path).toBe('/v1/carts/c1/items/FLASH-SNEAKER-01')
    expect(put.headers.get('authorization')).toBe('Bearer t1')
    expect(put.body).toEqual({ quantity: 2 })
    expect(JSON.parse(localStorage.getItem(CART_STORAGE_KEY)!)).toMatchObject({ cartId: 'c1', token: 't1' })
  })

  it('survives a reload: the same cart id and token, lines loaded from the server', async () => {
    fakeServer((r) => {
      if (r.method === 'POST') return json(201, { cart_id: 'c1', token: 't1', cart: emptyCart('c1') })
      if (r.method === 'PUT') return json(200, cartWith('c1', 'A', 1))
      if (r.method === 'GET' && r.path === '/v1/carts/c1' && r.headers.get('authorization') === 'Bearer t1') return json(200, cartWith('c1', 'A', 1))
      return problem(401, 'unauthorized')
    })
    await useCartStore().setQuantity('A', 1)
    const again = reload()
    expect(again.cartId).toBe('c1')
    expect(again.itemCount).toBe(0)
    await again.refresh()
    expect(again.quantityOf('A')).toBe(1)
  })

  it('forgets a cart the server no longer knows and opens a new one on the next add', async () => {
    let carts = 0
    fakeServer((r) => {
      if (r.method === 'POST') {
        carts += 1
        return json(201, { cart_id: `c${carts}`, token: `t${carts}`, cart: emptyCart(`c${carts}`) })
      }
      if (r.path.startsWith('/v1/carts/c1')) return problem(404, 'cart-not-found')
      if (r.method === 'PUT') return json(200, cartWith('c2', 'A', 1))
      return problem(404, 'nope')
    })
    localStorage.setItem(CART_STORAGE_KEY, JSON.stringify({ cartId: 'c1', token: 't1', attempt: null }))
    carts = 1
    const cart = reload()
    expect(await cart.refresh()).toBeNull()
    expect(cart.cartId).toBeNull()
    expect(localStorage.getItem(CART_STORAGE_KEY)).toBeNull()
    await cart.setQuantity('A', 1)
    expect(cart.cartId).toBe('c2')
  })

  it('ignores a corrupt saved cart', () => {
    localStorage.setItem(CART_STORAGE_KEY, '{"cartId": 5')
    expect(reload().cartId).toBeNull()
  })
})

describe('checkout idempotency', () => {
  function serverWith(outcomes: (() => Response)[]) {
    return fakeServer((r) => {
      if (r.method === 'POST' && r.path === '/v1/carts') return json(201, { cart_id: 'c1', token: 't1', cart: emptyCart('c1') })
      if (r.method === 'PUT') return json(200, cartWith('c1', 'A', 2))
      if (r.method === 'POST' && r.path === '/v1/carts/c1/checkout') return outcomes.shift()!()
      return problem(404, 'nope')
    })
  }
  const keysOf = (seen: { path: string; headers: Headers }[]) =>
    seen.filter((r) => r.path.endsWith('/checkout')).map((r) => r.headers.get('idempotency-key'))

  it('retries after a provider error with the same key, and succeeds once', async () => {
    const { seen } = serverWith([() => problem(502, 'payment-provider-error'), () => problem(503, 'unavailable', {}, { 'retry-after': '1' }), () => json(201, order('o1', 'c1'))])
    const cart = useCartStore()
    await cart.setQuantity('A', 2)
    await expect(cart.checkout('tok_visa', '')).rejects.toMatchObject({ code: 'payment-provider-error' })
    const e = await cart.checkout('tok_visa', '').catch((x: unknown) => x)
    expect(e).toBeInstanceOf(ApiProblem)
    expect((e as ApiProblem).retryAfterSecs).toBe(1)
    const placed = await cart.checkout('tok_visa', '')
    expect(placed.order_id).toBe('o1')
    const keys = keysOf(seen)
    expect(keys).toHaveLength(3)
    expect(new Set(keys).size).toBe(1)
    // The order is remembered with its cart's token, and the cart is done.
    expect(cart.tokenForOrder('o1')).toBe('t1')
    expect(cart.cartId).toBeNull()
  })

  it('a declined payment keeps the cart; the next try is a new attempt with a new key', async () => {
    const { seen } = serverWith([() => problem(402, 'payment-declined'), () => json(201, order('o2', 'c1'))])
    const cart = useCartStore()
    await cart.setQuantity('A', 2)
    await expect(cart.checkout('tok_decline', '')).rejects.toMatchObject({ code: 'payment-declined', status: 402 })
    expect(cart.cartId).toBe('c1')
    await cart.checkout('tok_visa', 'me@example.com')
    const [first, second] = keysOf(seen)
    expect(first).toBeTruthy()
    expect(second).not.toBe(first)
    expect(seen.filter((r) => r.path.endsWith('/checkout')).map((r) => r.body)).toEqual([
      { payment: { token: 'tok_decline' } },
      { payment: { token: 'tok_visa' }, email: 'me@example.com' },
    ])
  })

  it('a retry after a reload mid-attempt still uses the attempt’s key', async () => {
    const { seen } = serverWith([() => { throw new TypeError('network down') }, () => json(201, order('o3', 'c1'))])
    await useCartStore().setQuantity('A', 2)
    await expect(useCartStore().checkout('tok_visa', '')).rejects.toMatchObject({ code: 'network' })
    const again = reload()
    expect(again.pendingKey()).toBe(keysOf(seen)[0])
    await again.checkout('tok_visa', '')
    const keys = keysOf(seen)
    expect(keys[1]).toBe(keys[0])
  })
})
