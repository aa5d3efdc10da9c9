import { beforeAll, describe, expect, it } from 'vitest'
import type { Page, Request, Route } from 'playwright-core'
import { eventually, screenshot } from './harness'
import { useStack } from './stack'

/**
 * `Retry-After` as the buyer sees it. The binary limits cart edits per SKU to one a
 * second here (`FLASHCORE_RATE_SKU=1:1`), so a second edit of a SKU within the
 * second is answered 429 `rate-limited` with `Retry-After: 1` by the server itself.
 * The server never asks for more than a second (its GCRA refills within 1/rate, and
 * its 503s all say 1), so the longer countdowns are answered in the browser's
 * network layer, with the server's own problem document, and every retry goes on
 * to the real server.
 */
const SKU = 'FLASH-SNEAKER-01'
const stack = useStack({ FLASHCORE_RATE_SKU: '1:1' })
/** Products on sale with stock, other than the sneaker: one per test, so their per-SKU limits do not meet. */
let others: string[] = []

beforeAll(async () => {
  const page = await stack().api('GET', '/v1/products?limit=100')
  const items = (page.body as { items: { sku: string; on_sale: boolean; available: number }[] }).items
  others = items.filter((p) => p.on_sale && p.available > 10 && p.sku !== SKU).map((p) => p.sku)
  expect(others.length).toBeGreaterThanOrEqual(2)
})

interface Seen {
  status: number
  retryAfter: string | null
  /** When the request was sent and when its answer came (ms, this process's clock). */
  sentAt: number
  answeredAt: number
  idempotencyKey: string | null
}

/** Records every API call of `page` whose path matches `path` (method `method`). */
function recordCalls(page: Page, method: string, path: RegExp): Seen[] {
  const seen: Seen[] = []
  const sent = new Map<Request, number>()
  page.on('request', (r) => {
    if (r.method() === method && path.test(new URL(r.url()).pathname)) sent.set(r, Date.now())
  })
  page.on('requestfinished', (r) => {
    const at = sent.get(r)
    if (at === undefined) return
    void r.response().then(async (res) => {
      if (!res) return
      const headers = await res.allHeaders()
      const request = await r.allHeaders()
      seen.push({
        status: res.status(),
        retryAfter: headers['retry-after'] ?? null,
        sentAt: at,
        answeredAt: Date.now(),
        idempotencyKey: request['idempotency-key'] ?? null,
      })
    })
  })
  return seen
}

interface NoticeState {
  code: string | null
  headline: string | null
  countdown: string | null
  /** Whether the notice's first button (the retry) is disabled; null without one. */
  retryDisabled: boolean | null
}

/**
 * Records, in the page, every state the problem notice goes through (as the DOM
 * changes, not when the test looks), so a one-second state cannot be missed.
 */
async function recordNotices(page: Page): Promise<() => Promise<NoticeState[]>> {
  await page.addInitScript(() => {
    const w = window as unknown as { __notices: unknown[] }
    w.__notices = []
    let last = ''
    const look = () => {
      const n = document.querySelector('[data-testid=problem]')
      if (!n) return
      const button = n.querySelector('button')
      const state = {
        code: n.getAttribute('data-code'),
        headline: n.querySelector('strong')?.textContent ?? null,
        countdown: n.querySelector('[data-testid=retry-countdown]')?.textContent ?? null,
        retryDisabled: button ? button.disabled : null,
      }
      const key = JSON.stringify(state)
      if (key !== last) {
        last = key
        w.__notices.push(state)
      }
    }
    new MutationObserver(look).observe(document, { subtree: true, childList: true, characterData: true, attributes: true })
  })
  return () => page.evaluate(() => (window as unknown as { __notices: NoticeState[] }).__notices)
}

/** The distinct countdown texts in the order they showed. */
function countdowns(states: NoticeState[]): string[] {
  const out: string[] = []
  for (const s of states) if (s.countdown !== null && out.at(-1) !== s.countdown) out.push(s.countdown)
  return out
}

/** The server's own problem document for `code` (as `http/src/error.rs` writes it). */
function problemBody(status: number, code: string, title: string, detail: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ type: `urn:flashcore:problem:${code}`, title, status, detail, code, ...extra })
}

async function addToCart(page: Page, sku: string): Promise<void> {
  await page.goto(`/products/${sku}`)
  await page.getByTestId('available-count').waitFor()
  await page.getByTestId('add-to-cart').click()
  await page.getByTestId('added').waitFor()
}

describe('Retry-After', () => {
  it('a cart edit the server rate-limits (429, Retry-After: 1) says so in words, counts down and succeeds when retried by itself', async () => {
    const { context, page } = await stack().newBuyer()
    const notices = await recordNotices(page)
    const puts = recordCalls(page, 'PUT', new RegExp(`^/v1/carts/[^/]+/items/${SKU}$`))
    await addToCart(page, SKU)
    await expect.poll(() => puts.length).toBe(1)

    // Another buyer edits the sneaker: once their edit is let through, the sneaker's
    // one edit a second is spent and the next one within the second is refused.
    const other = (await stack().api('POST', '/v1/carts')).body as { cart_id: string; token: string }
    await eventually('another buyer’s edit of the sneaker let through', async () => {
      const r = await stack().api('PUT', `/v1/carts/${other.cart_id}/items/${SKU}`, { key: other.token, body: { quantity: 1 } })
      if (r.status === 429) return undefined
      expect(r.status).toBe(200)
      return true
    })
    await page.getByRole('button', { name: 'One more' }).click()
    await page.getByTestId('add-to-cart').click()

    const problem = page.getByTestId('problem')
    await expect.poll(() => problem.getAttribute('data-code')).toBe('rate-limited')
    const text = (await problem.textContent()) ?? ''
    expect(text).toContain('Too many requests')
    expect(text).toContain('Wait a moment.')
    await screenshot(page, 'retry-rate-limited')

    // The countdown runs out and the same edit goes again, by itself, and is let through.
    await expect.poll(() => page.getByTestId('added').textContent(), { timeout: 10_000 }).toContain('2 in your cart.')
    expect(await problem.count()).toBe(0)
    // What the buyer saw meanwhile: the words and the second counted, the retry button waiting for it.
    const states = await notices()
    expect(states[0]).toEqual({ code: 'rate-limited', headline: 'Too many requests', countdown: 'Retrying in 1 s…', retryDisabled: true })
    expect(countdowns(states)).toEqual(['Retrying in 1 s…'])
    await expect.poll(() => puts.length).toBe(3)
    expect(puts.map((p) => p.status)).toEqual([200, 429, 200])
    expect(puts[1]!.retryAfter).toBe('1')
    // Not retried before the second was up.
    expect(puts[2]!.sentAt - puts[1]!.answeredAt).toBeGreaterThanOrEqual(900)

    // The server holds 2 for this buyer and 1 for the other.
    const p = await stack().api('GET', `/v1/products/${SKU}`)
    expect(p.body).toMatchObject({ available: 97 })
    await context.close()
  })

  it('a checkout answered 503 overloaded with Retry-After: 3 counts 3, 2, 1 down and then pays, once, with the same Idempotency-Key', async () => {
    const { context, page } = await stack().newBuyer()
    const notices = await recordNotices(page)
    const sku = others[0]!
    await addToCart(page, sku)
    await page.goto('/cart')
    await page.locator(`[data-testid=cart-line][data-sku="${sku}"]`).waitFor()

    const checkouts = recordCalls(page, 'POST', /^\/v1\/carts\/[^/]+\/checkout$/)
    let answered503 = 0
    await page.route('**/v1/carts/*/checkout', async (route: Route) => {
      if (answered503 === 0) {
        answered503 += 1
        await route.fulfill({
          status: 503,
          headers: { 'retry-after': '3', 'content-type': 'application/problem+json' },
          body: problemBody(503, 'overloaded', 'Overloaded', 'Too many requests are queued for this item; retry shortly.'),
        })
      } else {
        await route.continue()
      }
    })
    await page.getByTestId('checkout').click()

    const problem = page.getByTestId('problem')
    await expect.poll(() => problem.getAttribute('data-code')).toBe('overloaded')
    const text = (await problem.textContent()) ?? ''
    expect(text).toContain('The shop is very busy')
    expect(text).toContain('Nothing was changed')
    await page.getByTestId('retry-countdown').waitFor()
    await screenshot(page, 'retry-overloaded-countdown')

    // Then it retries by itself, the real server takes it, and the order is placed.
    const order = page.getByTestId('order')
    await order.waitFor({ timeout: 10_000 })
    const orderId = await order.getAttribute('data-order-id')
    await expect.poll(() => checkouts.length).toBe(2)
    expect(checkouts.map((c) => c.status)).toEqual([503, 201])
    expect(checkouts[0]!.retryAfter).toBe('3')
    expect(checkouts[1]!.sentAt - checkouts[0]!.answeredAt).toBeGreaterThanOrEqual(2800)
    expect(checkouts[0]!.idempotencyKey).toMatch(/\S/)
    expect(checkouts[1]!.idempotencyKey).toBe(checkouts[0]!.idempotencyKey)
    const seen = await stack().api('GET', `/v1/orders/${orderId}`, { key: stack().flashcore.adminKey })
    expect(seen.body).toMatchObject({ order_id: orderId, status: 'paid', lines: [{ sku, quantity: 1 }] })
    // The countdown went down a second at a time, the retry button waiting for it.
    const states = await notices()
    expect(countdowns(states)).toEqual(['Retrying in 3 s…', 'Retrying in 2 s…', 'Retrying in 1 s…'])
    expect(states.filter((s) => s.countdown !== null).every((s) => s.code === 'overloaded' && s.headline === 'The shop is very busy' && s.retryDisabled)).toBe(true)
    await screenshot(page, 'retry-overloaded-paid')
    await context.close()
  })

  it('under a limit that lasts, it retries by itself 5 times in a row, then leaves the retry to the buyer, whose retry goes through', async () => {
    const { context, page } = await stack().newBuyer()
    const sku = others[1]!
    await page.goto(`/products/${sku}`)
    await page.getByTestId('available-count').waitFor()

    // Every edit of this SKU is refused as the server refuses it, until `limited` ends.
    let limited = true
    let refused = 0
    await page.route(`**/v1/carts/*/items/${sku}`, async (route: Route) => {
      if (limited) {
        refused += 1
        await route.fulfill({
          status: 429,
          headers: { 'retry-after': '1', 'content-type': 'application/problem+json' },
          body: problemBody(429, 'rate-limited', 'Too many requests', 'Slow down: the sku limit is reached. Retry after 1 s.', { limit: 'sku' }),
        })
      } else {
        await route.continue()
      }
    })
    await page.getByTestId('add-to-cart').click()
    const problem = page.getByTestId('problem')
    await expect.poll(() => problem.getAttribute('data-code')).toBe('rate-limited')

    // The first try and 5 retries, a second apart; then the countdown is gone and the button is the buyer's.
    const retry = problem.getByRole('button', { name: 'Retry now' })
    const state = async () => {
      const shown = (await retry.count()) === 1
      return { refused, retryEnabled: shown && (await retry.isEnabled()), counting: (await page.getByTestId('retry-countdown').count()) > 0 }
    }
    // The wait after the last automatic retry is the buyer's: it says so.
    await page.waitForFunction(
      () => document.querySelector('[data-testid="retry-countdown"]')?.textContent?.startsWith('You can retry in') === true,
      null,
      { timeout: 15_000 },
    )
    expect(refused).toBe(6)
    await expect.poll(state, { timeout: 15_000 }).toEqual({ refused: 6, retryEnabled: true, counting: false })
    expect(await page.getByTestId('retry-countdown').count()).toBe(0)
    expect(await problem.textContent()).toContain('Too many requests')
    await screenshot(page, 'retry-gave-up')

    limited = false
    await retry.click()
    await expect.poll(() => page.getByTestId('added').textContent()).toContain('1 in your cart.')
    expect(await problem.count()).toBe(0)
    expect(refused).toBe(6)
    await context.close()
  })
})
