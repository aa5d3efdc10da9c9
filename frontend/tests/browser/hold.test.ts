import { describe, expect, it } from 'vitest'
import { eventually, screenshot } from './harness'
import { useStack } from './stack'

const SKU = 'FLASH-SNEAKER-01'
const stack = useStack({ FLASHCORE_HOLD_TTL_MS: '3000' })


describe('holds', () => {
  it('a hold that lapses shows as lapsed, its stock returns, and it can be reserved again', async () => {
    const { context, page } = await stack().newBuyer()
    await page.goto(`/products/${SKU}`)
    await expect.poll(() => page.getByTestId('available-count').textContent()).toBe('100')
    await page.getByTestId('add-to-cart').click()
    await page.getByTestId('added').waitFor()
    await expect.poll(() => page.getByTestId('available-count').textContent()).toBe('99')
    await page.getByTestId('go-to-cart').click()
    const line = page.locator(`[data-testid=cart-line][data-sku="${SKU}"]`)
    await line.getByTestId('hold-countdown').waitFor()

    await line.getByTestId('hold-lapsed').waitFor({ timeout: 10_000 })
    expect(await line.getAttribute('data-lapsed')).toBe('true')
    expect(await line.textContent()).toContain('no longer reserved')
    await screenshot(page, 'storefront-hold-lapsed')

    // The server released the unit.
    await eventually('the lapsed unit back in stock', async () => {
      const r = await stack().api('GET', `/v1/products/${SKU}`)
      return (r.body as { available: number }).available === 100 ? true : undefined
    })

    await line.getByRole('button', { name: 'Reserve again' }).click()
    await line.getByTestId('hold-countdown').waitFor()
    const r = await stack().api('GET', `/v1/products/${SKU}`)
    expect((r.body as { available: number }).available).toBe(99)
    await context.close()
  })
})
