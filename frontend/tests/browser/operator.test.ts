import { describe, expect, it } from 'vitest'
import { screenshot } from './harness'
import { useStack } from './stack'

const SKU = 'FLASH-SNEAKER-01'
const stack = useStack()


describe('operator console', () => {
  it('an admin restocks the sneaker and a storefront page shows the new count live; an operator key cannot', async () => {
    const shopper = await stack().newBuyer()
    await shopper.page.goto(`/products/${SKU}`)
    const count = shopper.page.getByTestId('available-count')
    await expect.poll(() => count.textContent()).toBe('100')

    const { context, page } = await stack().newOperator()
    await page.goto('/ops')
    await page.getByLabel('API key').fill(stack().flashcore.adminKey)
    await page.getByTestId('sign-in').click()
    await expect.poll(() => page.getByTestId('role').textContent()).toBe('admin')
    // The overview refreshes every second: its charts get points.
    await page.getByTestId('supervisors').waitFor()
    const committed = page.locator('[data-testid="chart-Committed / s"]')
    await expect.poll(() => committed.locator('polyline').getAttribute('points'), { timeout: 10_000 }).toMatch(/ /)
    // Other buyers' orders show on the orders/s chart within a few refreshes.
    const first = await stack().api('GET', '/v1/products?limit=1')
    const other = (first.body as { items: { sku: string }[] }).items[0]!.sku
    for (let i = 0; i < 3; i++) await stack().placeOrder(other, 1)
    await expect.poll(async () => Number((await committed.getByTestId('chart-peak').textContent())?.split(' ')[0]), { timeout: 10_000 }).toBeGreaterThan(0)
    await screenshot(page, 'ops-overview')

    await page.getByRole('link', { name: 'Stock' }).click()
    const row = page.locator(`[data-testid=stock-table] tr[data-sku="${SKU}"]`)
    await expect.poll(() => row.getByTestId('stock-available').textContent()).toBe('100')
    await row.getByLabel(`Units to add to ${SKU}`).fill('25')
    await row.getByTestId('restock').click()
    await expect.poll(() => page.getByTestId('stock-done').textContent()).toContain('125 of 125')
    await screenshot(page, 'ops-stock')

    // The storefront page, untouched, shows the new count.
    await expect.poll(() => count.textContent(), { timeout: 10_000 }).toBe('125')
    await screenshot(shopper.page, 'storefront-restocked')

    // The admin makes an operator key; its secret is shown once.
    await page.getByRole('link', { name: 'API keys' }).click()
    await page.getByLabel('Name').fill('night shift')
    await page.getByLabel('Role').selectOption('operator')
    await page.getByTestId('create-key').click()
    const secret = (await page.getByTestId('new-key-secret').textContent())?.trim() ?? ''
    expect(secret).toMatch(/^fck_/)
    await page.locator('[data-testid=keys] tr', { hasText: 'night shift' }).waitFor()
    await screenshot(page, 'ops-keys')
    await page.getByRole('button', { name: 'I have saved it' }).click()
    expect(await page.getByTestId('new-key-secret').count()).toBe(0)

    await page.getByRole('link', { name: 'Orders' }).click()
    await page.getByTestId('orders').waitFor()
    await screenshot(page, 'ops-orders')

    // Signed in with the operator key, the console offers no stock change…
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.getByLabel('API key').fill(secret)
    await page.getByTestId('sign-in').click()
    await expect.poll(() => page.getByTestId('role').textContent()).toBe('operator')
    await page.getByRole('link', { name: 'Stock' }).click()
    await page.getByTestId('read-only').waitFor()
    const opRow = page.locator(`[data-testid=stock-table] tr[data-sku="${SKU}"]`)
    await opRow.waitFor()
    expect(await opRow.getByTestId('restock').isDisabled()).toBe(true)
    expect(await opRow.getByLabel(`Units to add to ${SKU}`).isDisabled()).toBe(true)
    await screenshot(page, 'ops-stock-operator')
    await page.getByRole('link', { name: 'API keys' }).click()
    await page.getByTestId('keys-admin-only').waitFor()

    // …and the server refuses it anyway.
    const refused = await stack().api('POST', `/v1/admin/products/${SKU}/stock`, { key: secret, body: { restock: 1 } })
    expect(refused.status).toBe(403)
    expect(refused.body).toMatchObject({ code: 'forbidden' })
    const after = await stack().api('GET', `/v1/products/${SKU}`)
    expect(after.body).toMatchObject({ available: 125, total: 125 })

    await context.close()
    await shopper.context.close()
  })
})
