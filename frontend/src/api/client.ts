/**
 * The only way to the API: an openapi-fetch client over the types generated from
 * the server's OpenAPI document (`npm run gen:api`), with one middleware that feeds
 * the server clock from every response's `Date` header.
 */
import createClient, { type Client } from 'openapi-fetch'
import { serverClock, type ServerClock } from '@/lib/serverClock'
import { ApiProblem, networkProblem, parseRetryAfter, toProblem } from './problem'
import type { components, paths } from './schema'

export type Schemas = components['schemas']
export type Product = Schemas['ProductDto']
export type ProductPage = Schemas['ProductPage']
export type Cart = Schemas['CartDto']
export type CartLine = Schemas['CartLineDto']
export type NewCart = Schemas['NewCartDto']
export type Order = Schemas['OrderDto']
export type OrderPage = Schemas['OrderPage']
export type Availability = Schemas['AvailabilityDto']
export type ProductBody = Schemas['ProductBody']
export type StockBody = Schemas['StockBody']
export type ApiKey = Schemas['KeyDto']
export type NewApiKey = Schemas['NewKeyDto']
export type NewKeyBody = Schemas['NewKeyBody']
export type CheckoutBody = Schemas['CheckoutBody']
export type Ticket = Schemas['TicketDto']
export type Room = Schemas['RoomDto']
export type RoomList = Schemas['RoomList']

export type Api = Client<paths>

export interface ApiOptions {
  /** Origin (and prefix) of the API; empty means this page's origin. */
  baseUrl?: string
  fetch?: typeof globalThis.fetch
  clock?: ServerClock
}

/** A client whose responses also update `clock`. */
export function createApi(options: ApiOptions = {}): Api {
  const clock = options.clock ?? serverClock
  const client = createClient<paths>({
    baseUrl: options.baseUrl ?? globalThis.location?.origin ?? '',
    fetch: options.fetch ?? ((input: Request) => globalThis.fetch(input)),
  })
  const sentAt = new Map<string, number>()
  client.use({
    onRequest({ id }) {
      sentAt.set(id, Date.now())
    },
    onResponse({ id, response }) {
      const sent = sentAt.get(id)
      sentAt.delete(id)
      if (sent !== undefined) clock.observe(response.headers.get('date'), sent, Date.now())
    },
    onError({ id }) {
      sentAt.delete(id)
    },
  })
  return client
}

/** The app's client. */
export const api: Api = createApi()

/** Resolves to the data of a successful call; throws an [`ApiProblem`] for any other outcome. */
export async function unwrap<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  let result: { data?: T; error?: unknown; response: Response }
  try {
    result = await call
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e
    throw new ApiProblem(networkProblem(), null)
  }
  const { response } = result
  if (response.ok) return result.data as T
  throw new ApiProblem(toProblem(result.error, response), parseRetryAfter(response.headers.get('retry-after')))
}

/** The `Authorization` header for a cart token or an API key. */
export function bearer(secret: string): { Authorization: string } {
  return { Authorization: `Bearer ${secret}` }
}

const AVAILABILITY_PATH = '/v1/products/{sku}/availability' satisfies keyof paths

/**
 * The URL of a product's availability stream. Server-Sent Events are read with
 * `EventSource` (which reconnects by itself), so this one route is not called
 * through openapi-fetch; its path is still checked against the generated types.
 */
export function availabilityUrl(sku: string, baseUrl: string = globalThis.location?.origin ?? ''): string {
  return `${baseUrl}${AVAILABILITY_PATH.replace('{sku}', encodeURIComponent(sku))}`
}

/** Narrows one SSE `availability` payload (its schema is `AvailabilityDto`). */
export function parseAvailability(data: string): Availability | null {
  try {
    const v: unknown = JSON.parse(data)
    if (typeof v !== 'object' || v === null) return null
    const o = v as Record<string, unknown>
    if (typeof o.sku === 'string' && typeof o.available === 'number' && typeof o.total === 'number') {
      return { sku: o.sku, available: o.available, total: o.total }
    }
  } catch {
    // not JSON: ignored like any malformed event
  }
  return null
}
