import { describe, expect, it } from 'vitest'
import { screenshot } from './harness'
import { useStack } from './stack'

const SKU = 'FLASH-SNEAKER-01'
const stack = useStack()


describe('storefront', () => {
  it('renders the catalog of / within a second', async () => {
    // Each sample is a first visit: a fresh browser context, so nothing is cached.
    // The first page the browser process ever loads pays its own start-up, which a
    // visitor's browser has already paid; it is loaded once before measuring. The
    // median of three samples keeps one scheduling hiccup of the shared cores from
    // deciding the result.
    const warm = await stack().newBuyer()
    await warm.page.goto('/ops')
    await warm.page.getByTestId('sign-in').waitFor()
    await warm.context.close()

    const samples: { fcp: number; catalog: number }[] = []
    for (let i = 0; i < 3; i++) {
      const { context, page } = await stack().newBuyer()
      // Record when the first product card appears, measured from navigation start.
      await page.addInitScript(() => {
        const w = window as unknown as { __firstCard?: number }
        new MutationObserver((_, obs) => {
          if (document.querySelector('[data-testid=product-card]')) {
            w.__firstCard = performance.now()
            obs.disconnect()
          }
        }).observe(document, { childList: true, subtree: true })
      })
      await page.goto('/')
      await page.locator('[data-testid=product-card]').first().waitFor()
      samples.push(
        await page.evaluate(() => ({
          catalog: (window as unknown as { __firstCard?: number }).__firstCard ?? -1,
          fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1,
        })),
      )
      if (i === 0) await screenshot(page, 'storefront-catalog')
      await context.close()
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
    const catalog = median(samples.map((s) => s.catalog))
    const fcp = median(samples.map((s) => s.fcp))
    console.log(
      `first render of /: catalog rendered ${samples.map((s) => s.catalog.toFixed(0)).join(', ')} ms (median ${catalog.toFixed(0)}), ` +
        `first contentful paint ${samples.map((s) => s.fcp.toFixed(0)).join(', ')} ms (median ${fcp.toFixed(0)})`,
    )
    expect(samples.every((s) => s.catalog > 0 && s.fcp > 0)).toBe(true)
    expect(catalog).toBeLessThanOrEqual(1000)
    expect(fcp).toBeLessThanOrEqual(1000)
  })

  it('a buyer finds the sneaker, adds 2, pays with tok_visa and sees the order while a second buyer watches the stock fall live', async () => {
    const buyer = await stack().newBuyer()
    const watcher = await stack().newBuyer()
    const page = buyer.page

    await page.goto('/')
    await page.getByLabel('Search').fill('sneaker')
    const card = page.locator(`[data-testid=product-card][data-sku="${SKU}"]`)
    await card.waitFor()
    expect(await page.locator('[data-testid=product-card]').count()).toBeGreaterThanOrEqual(1)
    await screenshot(page, 'storefront-search')
    await card.getByRole('link').click()
    await page.locator(`[data-testid=product][data-sku="${SKU}"]`).waitFor()

    await watcher.page.goto(`/products/${SKU}`)
    const watched = watcher.page.getByTestId('available-count')
    await expect.poll(() => watched.textContent(), { timeout: 10_000 }).toBe('100')
    await expect.poll(() => watcher.page.getByTestId('live-state').textContent()).toContain('Live')

    await expect.poll(() => page.getByTestId('available-count').textContent()).toBe('100')
    expect(await page.getByTestId('max-per-order').textContent()).toBe('At most 2 per order.')
    await page.getByRole('button', { name: 'One more' }).click()
    expect(await page.getByLabel('Quantity').inputValue()).toBe('2')
    // max_per_order is 2: the picker goes no higher.
    expect(await page.getByRole('button', { name: 'One more' }).isDisabled()).toBe(true)
    await page.getByTestId('add-to-cart').click()
    await page.getByTestId('added').waitFor()
    await screenshot(page, 'storefront-product')

    // The second buyer's page falls to 98 without reloading.
    await expect.poll(() => watched.textContent(), { timeout: 10_000 }).toBe('98')
    await screenshot(watcher.page, 'storefront-product-watcher')

    await page.getByTestId('go-to-cart').click()
    const line = page.locator(`[data-testid=cart-line][data-sku="${SKU}"]`)
    await line.waitFor()
    expect(await line.getByRole('combobox').inputValue()).toBe('2')
    await expect.poll(() => line.getByTestId('hold-countdown').textContent()).toMatch(/^\d\d:\d\d$/)
    expect(await page.getByLabel(/Test card: approved/).isChecked()).toBe(true)
    await page.getByLabel('Email for the receipt (optional)').fill('buyer@example.com')
    await screenshot(page, 'storefront-cart')
    await page.getByTestId('checkout').click()

    const order = page.getByTestId('order')
    await order.waitFor()
    const orderId = await order.getAttribute('data-order-id')
    expect(orderId).toBeTruthy()
    expect(await page.locator(`[data-testid=order-line][data-sku="${SKU}"] [data-testid=order-line-qty]`).textContent()).toBe('2')
    expect(await order.textContent()).toContain('buyer@example.com')
    await screenshot(page, 'storefront-order')

    // The order is real: an operator sees it on the server.
    const seen = await stack().api('GET', `/v1/orders/${orderId}`, { key: stack().flashcore.adminKey })
    expect(seen.status).toBe(200)
    expect(seen.body).toMatchObject({ order_id: orderId, status: 'paid', lines: [{ sku: SKU, quantity: 2 }] })

    // It survives a reload of the confirmation page.
    await page.reload()
    await page.getByTestId('order').waitFor()

    // When the last units go, the watcher sees "Sold out" appear live.
    const cut = await stack().api('POST', `/v1/admin/products/${SKU}/stock`, { key: stack().flashcore.adminKey, body: { set_total: 2 } })
    expect(cut).toMatchObject({ status: 200, body: { available: 0, total: 2 } })
    await watcher.page.getByTestId('sold-out').waitFor({ timeout: 10_000 })
    expect(await watcher.page.getByTestId('add-to-cart').isDisabled()).toBe(true)
    await screenshot(watcher.page, 'storefront-sold-out')

    await buyer.context.close()
    await watcher.context.close()
  })

  it('a provider error retries the same attempt; a declined payment shows the message and keeps the cart; a new attempt pays', async () => {
    const { context, page } = await stack().newBuyer()
    // Any product on sale with stock will do: the first the catalog lists as in stock.
    await page.goto('/')
    await page.getByLabel('Show').selectOption('in-stock')
    await page.locator('[data-testid=product-card]').first().getByRole('link').click()
    const product = page.getByTestId('product')
    await product.waitFor()
    const sku = await product.getAttribute('data-sku')
    await page.getByTestId('add-to-cart').click()
    await page.getByTestId('added').waitFor()
    await page.goto('/cart')
    const problem = page.getByTestId('problem')
    const pending = page.getByTestId('pending-attempt')

    // A provider error is retried as the same attempt, with the same Idempotency-Key.
    await page.getByLabel(/Test card: provider error/).check()
    await page.getByTestId('checkout').click()
    await expect.poll(() => problem.getAttribute('data-code')).toBe('payment-provider-error')
    const attempt = await pending.textContent()
    expect(attempt).toMatch(/reuses attempt [0-9a-f]{8}/)
    await page.getByRole('button', { name: 'Retry payment' }).click()
    await expect.poll(() => problem.getAttribute('data-code')).toBe('payment-provider-error')
    expect(await pending.textContent()).toBe(attempt)

    // A decline is final: the attempt ends, the cart stays.
    await page.getByLabel(/Test card: declined/).check()
    await page.getByTestId('checkout').click()
    await expect.poll(() => problem.getAttribute('data-code')).toBe('payment-declined')
    expect(await pending.count()).toBe(0)
    expect(await problem.textContent()).toContain('Your payment was declined')
    expect(await problem.textContent()).toContain('Nothing was charged')
    await page.locator(`[data-testid=cart-line][data-sku="${sku}"]`).waitFor()
    await screenshot(page, 'storefront-declined')

    // The cart is still there after a reload, and pays with another card.
    await page.reload()
    await page.locator(`[data-testid=cart-line][data-sku="${sku}"]`).waitFor()
    await page.getByLabel(/Test card: approved/).check()
    await page.getByTestId('checkout').click()
    await page.getByTestId('order').waitFor()
    await context.close()
  })

  it('a product whose sale has not started counts down on server time with add-to-cart disabled', async () => {
    const { context, page } = await stack().newBuyer()
    await page.goto('/products/UPCOMING-CONSOLE-01')
    await page.getByTestId('sale-countdown').waitFor()
    const first = await page.getByTestId('countdown').textContent()
    expect(first).toMatch(/\d\d:\d\d:\d\d/)
    expect(await page.getByTestId('add-to-cart').isDisabled()).toBe(true)
    await expect.poll(() => page.getByTestId('countdown').textContent(), { timeout: 5000 }).not.toBe(first)
    await screenshot(page, 'storefront-upcoming')
    await context.close()
  })
})
