import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { Product } from '@/api/client'
import { matches, useCatalogStore } from '@/stores/catalog'
import { fakeServer, json } from './fakeServer'

const product = (sku: string, extra: Partial<Product> = {}): Product => ({
  sku,
  title: `${sku} title`,
  description: '',
  price: { amount: 100, currency: 'EUR' },
  max_per_order: null,
  sale_starts_at: null,
  on_sale: true,
  available: 5,
  total: 5,
  ...extra,
})

beforeEach(() => setActivePinia(createPinia()))
afterEach(() => vi.unstubAllGlobals())

describe('catalog', () => {
  it('pages with the keyset cursor until there is none', async () => {
    const all = Array.from({ length: 5 }, (_, i) => product(`SKU-${i}`))
    const { seen } = fakeServer((r) => {
      const u = new URL(r.path, 'http://x')
      const limit = Number(u.searchParams.get('limit'))
      const after = u.searchParams.get('cursor')
      const start = after ? all.findIndex((p) => p.sku === after) + 1 : 0
      const items = all.slice(start, start + limit)
      const more = start + limit < all.length
      return json(200, { items, next_cursor: more ? items[items.length - 1]!.sku : null })
    })
    const c = useCatalogStore()
    await c.loadMore(2)
    expect(c.items.map((p) => p.sku)).toEqual(['SKU-0', 'SKU-1'])
    await c.loadMore(2)
    await c.loadMore(2)
    expect(c.items).toHaveLength(5)
    expect(c.done).toBe(true)
    await c.loadMore(2)
    expect(seen.map((r) => r.path)).toEqual(['/v1/products?limit=2', '/v1/products?limit=2&cursor=SKU-1', '/v1/products?limit=2&cursor=SKU-3'])
  })

  it('searches every word in SKU, title and description, and filters by sale state', () => {
    const sneaker = product('FLASH-SNEAKER-01', { title: 'Limited sneaker' })
    const consoleP = product('UPCOMING-CONSOLE-01', { on_sale: false, sale_starts_at: '2030-01-01T00:00:00Z' })
    expect(matches(sneaker, 'sneaker', 'all')).toBe(true)
    expect(matches(sneaker, 'flash limited', 'all')).toBe(true)
    expect(matches(sneaker, 'flash console', 'all')).toBe(false)
    expect(matches(consoleP, '', 'upcoming')).toBe(true)
    expect(matches(consoleP, '', 'in-stock')).toBe(false)
    expect(matches(product('X', { available: 0 }), '', 'in-stock')).toBe(false)
  })
})
