import { describe, expect, it } from 'vitest'
import { effectScope, nextTick, ref } from 'vue'
import { useAvailability, type EventSourceLike } from '@/composables/useAvailability'

class FakeEventSource implements EventSourceLike {
  static opened: FakeEventSource[] = []
  onopen: ((ev: Event) => void) | null = null
  onerror: ((ev: Event) => void) | null = null
  readyState = 0
  closed = false
  private listeners = new Map<string, ((ev: MessageEvent<string>) => void)[]>()
  constructor(readonly url: string) {
    FakeEventSource.opened.push(this)
  }
  addEventListener(type: string, l: (ev: MessageEvent<string>) => void) {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), l])
  }
  close() {
    this.closed = true
  }
  emit(type: string, data: string) {
    for (const l of this.listeners.get(type) ?? []) l(new MessageEvent(type, { data }))
  }
}

const open = (url: string) => new FakeEventSource(url)

describe('live availability from the SSE stream', () => {
  it('opens the product’s stream and follows its availability events', () => {
    FakeEventSource.opened = []
    const scope = effectScope()
    const a = scope.run(() => useAvailability('FLASH-SNEAKER-01', open))!
    const es = FakeEventSource.opened[0]!
    expect(es.url).toMatch(/\/v1\/products\/FLASH-SNEAKER-01\/availability$/)
    es.onopen?.(new Event('open'))
    expect(a.live.value).toBe(true)
    es.emit('availability', JSON.stringify({ sku: 'FLASH-SNEAKER-01', available: 100, total: 100 }))
    es.emit('availability', JSON.stringify({ sku: 'FLASH-SNEAKER-01', available: 98, total: 100 }))
    expect(a.availability.value).toEqual({ sku: 'FLASH-SNEAKER-01', available: 98, total: 100 })
    expect(a.updates.value).toBe(2)
    // Malformed or foreign events change nothing.
    es.emit('availability', 'not json')
    es.emit('availability', JSON.stringify({ sku: 'OTHER', available: 1, total: 1 }))
    expect(a.availability.value?.available).toBe(98)
    scope.stop()
    expect(es.closed).toBe(true)
  })

  it('switches streams when the SKU changes and reports a lost stream', async () => {
    FakeEventSource.opened = []
    const sku = ref('A')
    const scope = effectScope()
    const a = scope.run(() => useAvailability(sku, open))!
    FakeEventSource.opened[0]!.onopen?.(new Event('open'))
    sku.value = 'B/1'
    await nextTick()
    expect(FakeEventSource.opened[0]!.closed).toBe(true)
    expect(FakeEventSource.opened[1]!.url).toMatch(/\/v1\/products\/B%2F1\/availability$/)
    expect(a.live.value).toBe(false)
    FakeEventSource.opened[1]!.onerror?.(new Event('error'))
    expect(a.live.value).toBe(false)
    scope.stop()
  })
})
