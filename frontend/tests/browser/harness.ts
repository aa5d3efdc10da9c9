/**
 * The browser tests' world: the real flashcore release binary (`FLASHCORE_BIN`,
 * in-memory store, port 0) serving the built app itself from `dist/`
 * (`FLASHCORE_FRONTEND_DIR`, an absolute path), with its own caching headers and
 * page CSP, and Debian's Chromium driven by playwright-core (no browser download)
 * at the binary's own address. No dev or preview server is in between.
 */
import { mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { startFlashcore, type Flashcore } from '../../scripts/flashcore.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const RESULTS = join(root, 'test-results')
/** The build the binary serves: `npm run build` makes it (global-setup.ts checks it is there). */
export const DIST = join(root, 'dist')

export function chromiumPath(): string {
  return process.env.CHROMIUM_BIN ?? '/usr/bin/chromium'
}

export interface Stack {
  flashcore: Flashcore
  /** The app's origin: the binary's own address, e.g. http://127.0.0.1:41234. */
  app: string
  browser: Browser
  /** A new browser context (its own storage: another buyer) with a page in it, phone-sized. */
  newBuyer(): Promise<{ context: BrowserContext; page: Page }>
  /** A new browser context with a page in it, desktop-sized (the operator's). */
  newOperator(): Promise<{ context: BrowserContext; page: Page }>
  /**
   * What went wrong in any page so far: uncaught errors and the page CSP's
   * refusals (the binary serves the app with a strict policy; nothing may break it).
   */
  pageErrors(): string[]
  /** Calls the API directly (as a test fixture, not through the app). */
  api(method: string, path: string, init?: { key?: string; body?: unknown; headers?: Record<string, string> }): Promise<{ status: number; body: unknown }>
  /** Places an order through the API (a fixture: another buyer's purchase). */
  placeOrder(sku: string, quantity: number): Promise<string>
  stop(): Promise<void>
}

export async function startStack(env: Record<string, string> = {}): Promise<Stack> {
  const flashcore = await startFlashcore({ env: { FLASHCORE_FRONTEND_DIR: DIST, ...env } })
  let browser: Browser | null = null
  try {
    const app = flashcore.url
    await expectServesApp(flashcore)
    browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--headless', '--no-sandbox', '--disable-gpu'] })
    mkdirSync(RESULTS, { recursive: true })
    const b = browser
    const errors: string[] = []
    const open = async (viewport: { width: number; height: number }) => {
      const context = await b.newContext({ baseURL: app, viewport })
      context.on('page', (p) => {
        p.on('pageerror', (e) => errors.push(`${p.url()}: ${e.message}`))
        p.on('console', (m) => {
          if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) errors.push(`${p.url()}: ${m.text()}`)
        })
      })
      const page = await context.newPage()
      page.setDefaultTimeout(15_000)
      return { context, page }
    }
    const callApi: Stack['api'] = async (method, path, init = {}) => {
      const headers: Record<string, string> = { ...init.headers }
      if (init.key) headers.authorization = `Bearer ${init.key}`
      if (init.body !== undefined) headers['content-type'] = 'application/json'
      const r = await fetch(`${flashcore.url}${path}`, { method, headers, body: init.body === undefined ? null : JSON.stringify(init.body) })
      const text = await r.text()
      let body: unknown = text
      try {
        body = JSON.parse(text)
      } catch {
        // not JSON
      }
      return { status: r.status, body }
    }
    return {
      flashcore,
      app,
      browser: b,
      newBuyer: () => open({ width: 390, height: 844 }),
      newOperator: () => open({ width: 1280, height: 900 }),
      pageErrors: () => [...errors],
      api: callApi,
      async placeOrder(sku, quantity) {
        const created = await callApi('POST', '/v1/carts')
        const { cart_id: id, token } = created.body as { cart_id: string; token: string }
        const put = await callApi('PUT', `/v1/carts/${id}/items/${sku}`, { key: token, body: { quantity } })
        if (put.status !== 200) throw new Error(`add ${sku}: ${put.status} ${JSON.stringify(put.body)}`)
        const paid = await callApi('POST', `/v1/carts/${id}/checkout`, {
          key: token,
          body: { payment: { token: 'tok_visa' } },
          headers: { 'idempotency-key': crypto.randomUUID() },
        })
        if (paid.status !== 201) throw new Error(`checkout: ${paid.status} ${JSON.stringify(paid.body)}`)
        return (paid.body as { order_id: string }).order_id
      },
      async stop() {
        await b.close()
        await flashcore.stop()
      },
    }
  } catch (e) {
    await browser?.close()
    await flashcore.stop()
    throw e
  }
}

/** Fails with what is wrong unless the binary answers `/` with the built `index.html`. */
async function expectServesApp(flashcore: Flashcore): Promise<void> {
  const r = await fetch(`${flashcore.url}/`)
  const type = r.headers.get('content-type') ?? ''
  const body = await r.text()
  if (r.status !== 200 || !type.startsWith('text/html') || !body.includes('<div id="app">')) {
    throw new Error(
      `flashcore at ${flashcore.url} does not serve the app from ${DIST} (GET / answered ${r.status} ${type}); ` +
        `is FLASHCORE_BIN a build that serves FLASHCORE_FRONTEND_DIR?\n${flashcore.logs()}`,
    )
  }
}

/** Saves a full-page screenshot as test-results/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<string> {
  const path = join(RESULTS, `${name}.png`)
  await page.screenshot({ path, fullPage: true })
  return path
}

/** Polls `probe` until it returns a value that is not undefined, or fails after `ms`. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms
  let last: unknown
  for (;;) {
    try {
      const v = await probe()
      if (v !== undefined) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
