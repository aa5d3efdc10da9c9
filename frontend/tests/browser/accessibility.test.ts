import { describe, expect, it } from 'vitest'
import type { Page } from 'playwright-core'
import { controlNames, focusRing, isFocused, pressUntilFocused, widths } from './a11y'
import { screenshot } from './harness'
import { useStack } from './stack'

const SKU = 'FLASH-SNEAKER-01'
const stack = useStack()


/** Counts every pointer and mouse event the page sees, to prove none happened. */
async function countPointerEvents(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const w = window as unknown as { __pointerEvents: string[] }
    w.__pointerEvents = []
    for (const type of ['pointerdown', 'mousedown', 'click']) {
      window.addEventListener(
        type,
        (e) => {
          // A keyboard activation of a button or link also dispatches `click`, with detail 0
          // and no pointer: only a real pointer's click counts.
          if (type === 'click' && (e as MouseEvent).detail === 0) return
          w.__pointerEvents.push(type)
        },
        true,
      )
    }
  })
}

async function pointerEvents(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as { __pointerEvents: string[] }).__pointerEvents)
}

/** Tabs to `target`, checks it shows a focus ring, and returns the number of presses. */
async function tabTo(page: Page, target: Parameters<typeof pressUntilFocused>[1], key = 'Tab'): Promise<number> {
  const n = await pressUntilFocused(page, target, { key })
  expect(await focusRing(page), `focus ring on ${target.toString()}`).not.toBeNull()
  return n
}

/** Every control named, and the page no wider than the phone. */
async function expectLabelledAndFits(page: Page, what: string): Promise<string[]> {
  const { controls, otherUnnamed } = await controlNames(page)
  expect(controls.length, `${what}: controls found`).toBeGreaterThan(0)
  const unnamed = controls.filter((c) => c.name === '').map((c) => `${c.role}: ${c.html}`)
  expect(unnamed, `${what}: controls without an accessible name`).toEqual([])
  expect(otherUnnamed, `${what}: operable nodes without an accessible name`).toEqual([])
  // Every control is exposed as something operable (not as generic text).
  const inert = controls.filter((c) => c.role === '' || c.role === 'generic' || c.role === 'none').map((c) => c.html)
  expect(inert, `${what}: controls without a role`).toEqual([])
  const w = await widths(page)
  expect(w.scrollWidth, `${what}: wider than the phone (${w.widest})`).toBeLessThanOrEqual(w.innerWidth)
  return controls.map((c) => `${c.role} "${c.name}"`)
}

describe('accessibility', () => {
  it('a buyer on a phone finds the sneaker, adds 2, picks the test card and places the order with the keyboard alone', async () => {
    const { context, page } = await stack().newBuyer()
    await countPointerEvents(page)
    await page.goto('/')
    await page.locator('[data-testid=product-card]').first().waitFor()

    // The first Tab reaches the skip link; Enter puts the focus in the main content.
    await page.keyboard.press('Tab')
    const skip = page.getByRole('link', { name: 'Skip to content' })
    expect(await isFocused(skip)).toBe(true)
    expect(await skip.isVisible()).toBe(true)
    await page.keyboard.press('Enter')
    await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe('main')

    // Search by typing; the flash product's card link is reachable and opens it with Enter.
    await tabTo(page, page.getByLabel('Search'))
    await page.keyboard.type('sneaker')
    const card = page.locator(`[data-testid=product-card][data-sku="${SKU}"]`)
    await card.waitFor()
    await expect.poll(() => page.locator('[data-testid=product-card]').count()).toBe(1)
    await tabTo(page, card.getByRole('link'))
    await screenshot(page, 'a11y-keyboard-catalog')
    await page.keyboard.press('Enter')
    await page.locator(`[data-testid=product][data-sku="${SKU}"]`).waitFor()
    await expect.poll(() => page.getByTestId('available-count').textContent()).toBe('100')

    // The quantity: the arrow keys step it, the "One more" button takes Space.
    const qty = page.getByLabel('Quantity')
    await tabTo(page, qty)
    await page.keyboard.press('ArrowUp')
    await expect.poll(() => qty.inputValue()).toBe('2')
    await page.keyboard.press('ArrowDown')
    await expect.poll(() => qty.inputValue()).toBe('1')
    await tabTo(page, page.getByRole('button', { name: 'One more' }))
    await page.keyboard.press('Space')
    await expect.poll(() => qty.inputValue()).toBe('2')
    // At the limit of 2 per order the button is disabled.
    await expect.poll(() => page.getByRole('button', { name: 'One more' }).isDisabled()).toBe(true)

    const add = page.getByTestId('add-to-cart')
    await tabTo(page, add)
    await page.keyboard.press('Enter')
    await expect.poll(() => page.getByTestId('added').textContent()).toContain('2 in your cart.')
    await expect.poll(() => page.getByTestId('available-count').textContent()).toBe('98')
    await screenshot(page, 'a11y-keyboard-product')

    await tabTo(page, page.getByTestId('go-to-cart'))
    await page.keyboard.press('Enter')
    const line = page.locator(`[data-testid=cart-line][data-sku="${SKU}"]`)
    await line.waitFor()
    expect(await line.getByRole('combobox').inputValue()).toBe('2')

    // The payment choice is one radio group: Tab lands on the chosen card, arrows move the choice.
    const approved = page.getByLabel(/Test card: approved/)
    const declined = page.getByLabel(/Test card: declined/)
    await tabTo(page, approved)
    await page.keyboard.press('ArrowDown')
    await expect.poll(() => declined.isChecked()).toBe(true)
    expect(await isFocused(declined)).toBe(true)
    await page.keyboard.press('ArrowUp')
    await expect.poll(() => approved.isChecked()).toBe(true)
    expect(await isFocused(approved)).toBe(true)
    await page.keyboard.press('Space')
    expect(await approved.isChecked()).toBe(true)

    // One Tab leaves the group for the email field.
    const email = page.getByLabel('Email for the receipt (optional)')
    await page.keyboard.press('Tab')
    expect(await isFocused(email)).toBe(true)
    await page.keyboard.type('keys@example.com')
    await tabTo(page, page.getByTestId('checkout'))
    await screenshot(page, 'a11y-keyboard-cart')
    await page.keyboard.press('Enter')

    const order = page.getByTestId('order')
    await order.waitFor()
    const orderId = await order.getAttribute('data-order-id')
    expect(await page.locator(`[data-testid=order-line][data-sku="${SKU}"] [data-testid=order-line-qty]`).textContent()).toBe('2')
    expect(await order.textContent()).toContain('keys@example.com')
    // The confirmation can be left by keyboard too.
    await tabTo(page, page.getByRole('link', { name: 'Continue shopping' }))
    await screenshot(page, 'a11y-keyboard-order')

    // The order is real, paid with the approved test card.
    const seen = await stack().api('GET', `/v1/orders/${orderId}`, { key: stack().flashcore.adminKey })
    expect(seen.status).toBe(200)
    expect(seen.body).toMatchObject({ order_id: orderId, status: 'paid', email: 'keys@example.com', lines: [{ sku: SKU, quantity: 2 }] })

    // And no pointer was used at any point.
    expect(await pointerEvents(page)).toEqual([])
    await context.close()
  })

  it('every control on the catalog, product, cart and checkout pages has an accessible name, and none is wider than the phone', async () => {
    const { context, page } = await stack().newBuyer()
    const names: Record<string, string[]> = {}

    await page.goto('/')
    await page.locator('[data-testid=product-card]').first().waitFor()
    names.catalog = await expectLabelledAndFits(page, 'catalog')
    expect(names.catalog).toEqual(expect.arrayContaining(['searchbox "Search"', 'combobox "Show"', 'link "Skip to content"', 'link "Cart"']))
    await screenshot(page, 'a11y-catalog')

    // A search that matches nothing shows its own text, still fitting.
    await page.getByLabel('Search').fill('no such thing anywhere')
    await expect.poll(() => page.locator('[data-testid=product-card]').count()).toBe(0)
    // Checked once the search has settled (its text shown), not while the
    // catalog's last pages are still loading and the button is being replaced.
    await page.getByText('Nothing matches').waitFor()
    await expectLabelledAndFits(page, 'catalog, no match')
    await page.getByLabel('Search').fill('')

    // A product on sale, before and after adding it.
    await page.goto(`/products/${SKU}`)
    await page.getByTestId('available-count').waitFor()
    names.product = await expectLabelledAndFits(page, 'product')
    expect(names.product).toEqual(
      expect.arrayContaining(['spinbutton "Quantity"', 'button "One more"', 'button "Add to cart"', 'link "← Catalog"']),
    )
    await page.getByTestId('add-to-cart').click()
    await page.getByTestId('added').waitFor()
    names.productAdded = await expectLabelledAndFits(page, 'product, added')
    expect(names.productAdded).toEqual(expect.arrayContaining(['link "Go to cart"']))
    await screenshot(page, 'a11y-product')

    // A product whose sale has not started (the countdown, add-to-cart disabled).
    await page.goto('/products/UPCOMING-CONSOLE-01')
    await page.getByTestId('sale-countdown').waitFor()
    await expectLabelledAndFits(page, 'product, upcoming')

    // The cart with its checkout form.
    await page.goto('/cart')
    await page.locator(`[data-testid=cart-line][data-sku="${SKU}"]`).waitFor()
    names.cart = await expectLabelledAndFits(page, 'cart and checkout')
    expect(names.cart).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^combobox "Quantity of /),
        'button "Remove"',
        expect.stringMatching(/^radio "Test card: approved/),
        expect.stringMatching(/^radio "Test card: declined/),
        'textbox "Email for the receipt (optional)"',
        expect.stringMatching(/^button "Pay .* and place order"$/),
      ]),
    )
    await screenshot(page, 'a11y-cart')

    // With a problem shown (a declined card), its buttons are named too.
    await page.getByLabel(/Test card: declined/).check()
    await page.getByTestId('checkout').click()
    await expect.poll(() => page.getByTestId('problem').getAttribute('data-code')).toBe('payment-declined')
    names.declined = await expectLabelledAndFits(page, 'checkout, declined')
    expect(names.declined).toEqual(expect.arrayContaining(['button "Dismiss"']))
    await screenshot(page, 'a11y-checkout-declined')

    // The confirmation.
    await page.getByLabel(/Test card: approved/).check()
    await page.getByTestId('checkout').click()
    await page.getByTestId('order').waitFor()
    await expectLabelledAndFits(page, 'order')

    // An empty cart.
    await page.goto('/cart')
    await page.getByTestId('cart-empty').waitFor()
    await expectLabelledAndFits(page, 'empty cart')
    console.log(`controls and their names: ${JSON.stringify(names)}`)

    // The checks are not vacuous: an unnamed button, an unlabelled input, a div made
    // into a button and something wider than the phone are all caught.
    await page.evaluate(() => {
      const probe = document.createElement('div')
      probe.id = 'a11y-probe'
      probe.innerHTML = '<button type="button"></button><input type="text"><div role="button" tabindex="0"></div><div class="wide"></div>'
      // Through the CSSOM: the page CSP refuses style attributes.
      const wide = probe.querySelector<HTMLElement>('.wide')!
      wide.style.width = '600px'
      wide.style.height = '1px'
      document.querySelector('main')?.append(probe)
    })
    const { controls, otherUnnamed } = await controlNames(page)
    expect(controls.filter((c) => c.name === '').map((c) => c.role)).toEqual(['button', 'textbox', 'button'])
    expect(otherUnnamed).toEqual([])
    const w = await widths(page)
    expect(w.scrollWidth).toBeGreaterThan(w.innerWidth)
    await page.evaluate(() => document.getElementById('a11y-probe')?.remove())
    await expect.poll(async () => (await widths(page)).scrollWidth).toBeLessThanOrEqual(390)
    await context.close()
  })
})
