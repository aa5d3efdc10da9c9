import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { Ticket } from '@/api/client'
import { SseParser } from '@/lib/sse'
import { useCartStore } from '@/stores/cart'
import { POLL_SECONDS, WAITING_STORAGE_KEY, passUsable, pollDelayMs, progress, useWaitingRoomStore, type StreamFetch } from '@/stores/waitingRoom'
import { cartWith, emptyCart, fakeServer, json, problem } from './fakeServer'

beforeEach(() => {
  localStorage.clear()
  setActivePinia(createPinia())
})
afterEach(() => {
  vi.unstubAllGlobals()
  vi.useRealTimers()
})

const SKU = 'SNEAKER'
const inAMinute = () => new Date(Date.now() + 60_000).toISOString()

function ticket(extra: Partial<Ticket> = {}): Ticket {
  return {
    ticket_id: '7',
    sku: SKU,
    state: 'waiting',
    position: 40,
    estimated_wait_secs: 4,
    poll_after_ms: null,
    pass: null,
    pass_expires_at: null,
    joined: 100,
    admitted: 10,
    sale_starts_at: null,
    ...extra,
  }
}

/** The server: a cart, a join, and ticket reads answered by `read`. */
function server(read: () => Ticket) {
  return fakeServer((r) => {
    if (r.method === 'POST' && r.path === '/v1/carts') return json(201, { cart_id: 'c1', token: 't1', cart: emptyCart('c1') })
    if (r.method === 'POST' && r.path === `/v1/products/${SKU}/queue`) return json(201, ticket())
    if (r.method === 'GET' && r.path === `/v1/products/${SKU}/queue/7`) return json(200, read())
    if (r.method === 'PUT') return json(200, cartWith('c1', SKU, 1))
    return problem(404, 'not-found')
  })
}

describe('waiting room store', () => {
  it('joins with the cart token and remembers the ticket across a reload', async () => {
    const { seen } = server(() => ticket({ position: 30 }))
    const room = useWaitingRoomStore()
    const t = await room.join(SKU)
    expect(t.position).toBe(40)
    const join = seen.find((r) => r.path === `/v1/products/${SKU}/queue`)!
    expect(join.headers.get('authorization')).toBe('Bearer t1')
    expect(JSON.parse(localStorage.getItem(WAITING_STORAGE_KEY)!)).toEqual({ [SKU]: { ticketId: '7', cartId: 'c1' } })

    setActivePinia(createPinia())
    const again = useWaitingRoomStore()
    expect((await again.join(SKU)).position).toBe(30)
    expect(seen.filter((r) => r.path === `/v1/products/${SKU}/queue`)).toHaveLength(1)
  })

  it('joins again when the remembered ticket is gone', async () => {
    localStorage.setItem(WAITING_STORAGE_KEY, JSON.stringify({ [SKU]: { ticketId: '7', cartId: 'c1' } }))
    useCartStore()
    localStorage.setItem('flashcore.cart.v1', JSON.stringify({ cartId: 'c1', token: 't1', attempt: null }))
    setActivePinia(createPinia())
    const { seen } = fakeServer((r) => {
      if (r.method === 'GET') return problem(404, 'ticket-not-found')
      return json(201, ticket({ ticket_id: '9' }))
    })
    const room = useWaitingRoomStore()
    expect((await room.join(SKU)).ticket_id).toBe('9')
    expect(seen.map((r) => r.method)).toEqual(['GET', 'POST'])
  })

  it('hands out a pass only while it is valid, and the cart sends it', async () => {
    let t = ticket()
    const { seen } = server(() => t)
    const room = useWaitingRoomStore()
    await room.join(SKU)
    expect(room.passFor(SKU)).toBeNull()
    t = ticket({ state: 'admitted', position: null, pass: 'p.sig', pass_expires_at: inAMinute() })
    await room.refresh(SKU)
    expect(room.passFor(SKU)).toBe('p.sig')
    await useCartStore().setQuantity(SKU, 1, room.passFor(SKU))
    expect(seen.find((r) => r.method === 'PUT')!.headers.get('waiting-room-pass')).toBe('p.sig')
    expect(passUsable(ticket({ state: 'admitted', pass: 'x', pass_expires_at: new Date(Date.now() - 1).toISOString() }))).toBe(false)
  })

  it('follows the ticket on its event stream until it is admitted', async () => {
    server(() => ticket())
    const room = useWaitingRoomStore()
    await room.join(SKU)
    const events = [ticket({ position: 12 }), ticket({ state: 'admitted', position: null, pass: 'p', pass_expires_at: inAMinute() })]
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        const enc = new TextEncoder()
        c.enqueue(enc.encode(': keep-alive\n\n'))
        for (const e of events) c.enqueue(enc.encode(`event: ticket\ndata: ${JSON.stringify(e)}\n\n`))
        c.close()
      },
    })
    const fetchStream = vi.fn<StreamFetch>(() => Promise.resolve(new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } })))
    const stop = room.follow(SKU, fetchStream)
    await vi.waitFor(() => expect(room.tickets[SKU]?.state).toBe('admitted'))
    expect(room.firstPosition[SKU]).toBe(40)
    const [url, init] = fetchStream.mock.calls[0]!
    expect(url).toContain(`/v1/products/${SKU}/queue/7/events`)
    expect((init.headers as Record<string, string>).Authorization).toBe('Bearer t1')
    stop()
  })

  it('polls while the stream is down, and stops at sold out', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true })
    let t = ticket()
    server(() => t)
    const room = useWaitingRoomStore()
    await room.join(SKU)
    const down = vi.fn<StreamFetch>(() => Promise.resolve(new Response('no', { status: 503 })))
    const stop = room.follow(SKU, down)
    t = ticket({ state: 'sold-out', position: null })
    await vi.advanceTimersByTimeAsync(POLL_SECONDS * 1000 + 10)
    await vi.waitFor(() => expect(room.tickets[SKU]?.state).toBe('sold-out'))
    expect(room.live[SKU] ?? false).toBe(false)
    stop()
  })

  it('polls when the ticket says, while the stream is down', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true })
    let t = ticket({ poll_after_ms: 20_000 })
    server(() => t)
    const room = useWaitingRoomStore()
    await room.join(SKU)
    await room.refresh(SKU)
    const down = vi.fn<StreamFetch>(() => Promise.resolve(new Response('no', { status: 503 })))
    const stop = room.follow(SKU, down)
    t = ticket({ state: 'sold-out', position: null })
    await vi.advanceTimersByTimeAsync(POLL_SECONDS * 1000 + 10)
    expect(room.tickets[SKU]?.state).toBe('waiting')
    await vi.advanceTimersByTimeAsync(20_000)
    await vi.waitFor(() => expect(room.tickets[SKU]?.state).toBe('sold-out'))
    expect(pollDelayMs(ticket({ poll_after_ms: 1_500 }))).toBe(1_500)
    expect(pollDelayMs(ticket())).toBe(POLL_SECONDS * 1000)
    stop()
  })

  it('measures progress from the first place seen', () => {
    expect(progress(ticket({ position: 10 }), 40)).toBe(0.75)
    expect(progress(ticket({ position: null }), null)).toBe(0)
    expect(progress(ticket({ state: 'admitted' }), 40)).toBe(1)
  })
})

describe('SSE parser', () => {
  it('joins chunks into events and drops comments', () => {
    const p = new SseParser()
    expect(p.push(': hi\n\nevent: ticket\nda')).toEqual([])
    expect(p.push('ta: {"a":1}\r\n\r\ndata: x\ndata: y\n\n')).toEqual([
      { event: 'ticket', data: '{"a":1}' },
      { event: 'message', data: 'x\ny' },
    ])
  })
})
