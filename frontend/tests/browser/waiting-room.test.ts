import { describe, expect, it } from 'vitest'
import { TEST_ADMIN_KEY } from '../../scripts/flashcore.mjs'
import { eventually, screenshot } from './harness'
import { useStack } from './stack'

const SKU = 'WR-SNEAKER'
const stack = useStack()

async function admin(method: string, path: string, body?: unknown) {
  const r = await stack().api(method, path, { key: TEST_ADMIN_KEY, body })
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`)
  return r.body
}

describe('waiting room', () => {
  it('a buyer queues, is admitted and buys; the next in line sees the sell-out at once', async () => {
    await admin('PUT', `/v1/admin/products/${SKU}`, {
      title: 'Queued sneaker',
      price: { amount: 12000, currency: 'EUR' },
      max_per_order: 1,
      total: 1,
      waiting_room: { admit_per_second: 1, pass_ttl_secs: 120 },
    })
    await admin('POST', `/v1/admin/products/${SKU}/queue/pause`)

    // The product page sends buyers to the line; the waiting page shows the place, live.
    const first = await stack().newBuyer()
    await first.page.goto(`/products/${SKU}`)
    await first.page.getByTestId('join-queue').click()
    await first.page.getByTestId('waiting-room').waitFor()
    await expect.poll(() => first.page.getByTestId('queue-position').textContent()).toBe('1')
    await expect.poll(() => first.page.getByTestId('queue-live').textContent()).toContain('Live')
    const second = await stack().newBuyer()
    await second.page.goto(`/products/${SKU}/queue`)
    await expect.poll(() => second.page.getByTestId('queue-position').textContent()).toBe('2')
    await screenshot(second.page, 'storefront-waiting-room')

    // Admission: the first buyer is taken to the product and adds it with the pass.
    await admin('POST', `/v1/admin/products/${SKU}/queue/resume`)
    await first.page.getByTestId('queue-pass').waitFor()
    expect(new URL(first.page.url()).pathname).toBe(`/products/${SKU}`)
    await first.page.getByTestId('add-to-cart').click()
    await first.page.getByTestId('added').waitFor()

    // The first buyer checks out (through the API with the page's own cart): sold out.
    const saved = await first.page.evaluate(() => localStorage.getItem('flashcore.cart.v1'))
    const { cartId, token } = JSON.parse(saved ?? '{}') as { cartId: string; token: string }
    const paid = await stack().api('POST', `/v1/carts/${cartId}/checkout`, {
      key: token,
      body: { payment: { token: 'tok_visa' } },
      headers: { 'idempotency-key': crypto.randomUUID() },
    })
    expect(paid.status).toBe(201)
    await second.page.getByTestId('queue-sold-out').waitFor()
    await screenshot(second.page, 'storefront-waiting-room-sold-out')

    // The console shows the room.
    await eventually('the room sold out', async () => {
      const r = (await admin('GET', `/v1/admin/products/${SKU}/queue`)) as { sold_out: boolean }
      return r.sold_out ? true : undefined
    })
    const ops = await stack().newOperator()
    await ops.page.goto('/ops/queues')
    await ops.page.getByLabel('API key').fill(stack().flashcore.adminKey)
    await ops.page.getByTestId('sign-in').click()
    const row = ops.page.locator(`tr[data-sku="${SKU}"]`)
    await expect.poll(() => row.getByTestId('room-state').textContent()).toContain('sold out')
    await row.getByTestId('room-rate-input').fill('7')
    await row.getByTestId('room-set-rate').click()
    await expect.poll(() => row.getByTestId('room-rate').textContent()).toBe('7')
    await screenshot(ops.page, 'console-waiting-rooms')
    await Promise.all([first.context.close(), second.context.close(), ops.context.close()])
  })
})
