/**
 * The buyer's places in waiting rooms (DESIGN §12), one per product, shared by
 * the waiting page and the product page.
 *
 * Joining needs the cart (its token is the buyer's identity in line), so the
 * cart store opens one first. The ticket id is kept in localStorage per product
 * so a reload keeps the place; the pass of an admitted ticket is what the product
 * page sends as `Waiting-Room-Pass` when adding the product.
 *
 * `follow` keeps a ticket live: the ticket's Server-Sent Events stream (read with
 * fetch, since it needs the cart token), and while that is down a poll when the
 * ticket says (`poll_after_ms`: about when its place may come up, so a crowd's
 * polls keep pace with admission), until the ticket is no longer waiting.
 */
import { defineStore } from 'pinia'
import { reactive } from 'vue'
import { api, bearer, unwrap, type Ticket } from '@/api/client'
import { SseParser } from '@/lib/sse'
import { isRecord, readJson, writeJson } from '@/lib/storage'
import { useCartStore } from './cart'

/** What `follow` reads the ticket stream with (`fetch`, or a fake in tests). */
export type StreamFetch = (url: string, init: RequestInit) => Promise<Response>

export const WAITING_STORAGE_KEY = 'flashcore.waiting.v1'

/** Seconds between polls while the live stream is down, for a ticket that gives no hint. */
export const POLL_SECONDS = 3

/** Milliseconds until the next read of `t` while the live stream is down: the server's hint. */
export function pollDelayMs(t: Ticket | null | undefined): number {
  const hint = t?.poll_after_ms
  return typeof hint === 'number' && hint > 0 ? hint : POLL_SECONDS * 1000
}

function storage(): Storage | undefined {
  return globalThis.localStorage
}

function isSaved(v: unknown): v is Record<string, { ticketId: string; cartId: string }> {
  return isRecord(v) && Object.values(v).every((t) => isRecord(t) && typeof t.ticketId === 'string' && typeof t.cartId === 'string')
}

/** Whether `t` lets its cart add the product at `nowMs`. */
export function passUsable(t: Ticket | null | undefined, nowMs: number = Date.now()): t is Ticket & { pass: string } {
  return !!t && t.state === 'admitted' && !!t.pass && !!t.pass_expires_at && Date.parse(t.pass_expires_at) > nowMs
}

/** Progress through the line, 0 to 1: how many of those ahead at joining are gone. */
export function progress(t: Ticket, startPosition: number | null): number {
  if (t.state !== 'waiting') return 1
  if (t.position === null || t.position === undefined || !startPosition) return 0
  return Math.min(1, Math.max(0, (startPosition - t.position) / startPosition))
}

export const useWaitingRoomStore = defineStore('waitingRoom', () => {
  const cart = useCartStore()
  /** The cart's ticket per SKU, as last read. */
  const tickets = reactive<Record<string, Ticket>>({})
  /** The first position seen per SKU (the progress bar's start). */
  const firstPosition = reactive<Record<string, number>>({})
  /** Whether the live stream of a SKU's ticket is open. */
  const live = reactive<Record<string, boolean>>({})

  function saved(): Record<string, { ticketId: string; cartId: string }> {
    return readJson(storage(), WAITING_STORAGE_KEY, isSaved) ?? {}
  }

  function remember(sku: string, ticketId: string, cartId: string) {
    const all = saved()
    all[sku] = { ticketId, cartId }
    writeJson(storage(), WAITING_STORAGE_KEY, all)
  }

  function update(sku: string, t: Ticket) {
    tickets[sku] = t
    if (t.position && !(sku in firstPosition)) firstPosition[sku] = t.position
  }

  /** Joins `sku`'s line with this browser's cart (or finds its ticket again). */
  async function join(sku: string): Promise<Ticket> {
    const c = await cart.open()
    const mine = saved()[sku]
    if (mine && mine.cartId === c.id) {
      try {
        return await refresh(sku)
      } catch {
        // gone (the room was reset): join again below
      }
    }
    const t = await unwrap(api.POST('/v1/products/{sku}/queue', { params: { path: { sku } }, headers: bearer(c.token) }))
    remember(sku, t.ticket_id, c.id)
    update(sku, t)
    return t
  }

  /** Reads the ticket of `sku` again. */
  async function refresh(sku: string): Promise<Ticket> {
    const c = await cart.open()
    const mine = saved()[sku]
    if (!mine) throw new Error(`no ticket for ${sku}`)
    const t = await unwrap(
      api.GET('/v1/products/{sku}/queue/{ticket_id}', {
        params: { path: { sku, ticket_id: mine.ticketId } },
        headers: bearer(c.token),
      }),
    )
    update(sku, t)
    return t
  }

  /** The pass to add `sku` with, if this browser holds a valid one. */
  function passFor(sku: string): string | null {
    const t = tickets[sku]
    return passUsable(t) ? t.pass : null
  }

  /**
   * Keeps the ticket of `sku` live until it is no longer waiting or `stop` is
   * called. `fetchImpl` reads the stream (tests hand in a fake).
   */
  function follow(sku: string, fetchImpl: StreamFetch = (url, init) => globalThis.fetch(url, init)): () => void {
    let stopped = false
    const abort = new AbortController()
    let timer: ReturnType<typeof setTimeout> | null = null
    const waiting = () => !stopped && tickets[sku]?.state === 'waiting'

    async function stream(): Promise<void> {
      const c = await cart.open()
      const mine = saved()[sku]
      if (!mine) return
      const url = `${globalThis.location?.origin ?? ''}/v1/products/${encodeURIComponent(sku)}/queue/${mine.ticketId}/events`
      const res = await fetchImpl(url, { headers: { ...bearer(c.token), accept: 'text/event-stream' }, signal: abort.signal })
      if (!res.ok || !res.body) throw new Error(`stream: ${res.status}`)
      live[sku] = true
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
      const parser = new SseParser()
      try {
        for (;;) {
          const { value, done } = await reader.read()
          if (done) return
          for (const ev of parser.push(value)) {
            if (ev.event !== 'ticket') continue
            try {
              update(sku, JSON.parse(ev.data) as Ticket)
            } catch {
              // a malformed event is dropped
            }
          }
        }
      } finally {
        live[sku] = false
      }
    }

    async function loop(): Promise<void> {
      while (waiting()) {
        try {
          await stream()
        } catch {
          // down: poll below, then try the stream again
        }
        if (!waiting()) return
        await new Promise<void>((resolve) => {
          timer = setTimeout(resolve, pollDelayMs(tickets[sku]))
        })
        if (!waiting()) return
        try {
          await refresh(sku)
        } catch {
          // shown by the next successful read
        }
      }
    }

    void loop()
    return () => {
      stopped = true
      abort.abort()
      if (timer !== null) clearTimeout(timer)
    }
  }

  return { tickets, firstPosition, live, join, refresh, passFor, follow }
})
