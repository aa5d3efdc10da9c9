/**
 * The browser tests' world: a real flashcore (in-memory store, port 0), the built
 * app served by `vite preview` with `/v1`, `/health` and `/ready` proxied to it, and
 * Debian's Chromium driven by playwright-core (no browser download).
 */
import { mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { preview, type PreviewServer } from 'vite'
import { startFlashcore, type Flashcore } from '../../scripts/flashcore.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const RESULTS = join(root, 'test-results')

export function chromiumPath(): string {
  return process.env.CHROMIUM_BIN ?? '/usr/bin/chromium'
}

export interface Stack {
  flashcore: Flashcore
  /** The app's origin, e.g. http://127.0.0.1:4173. */
  app: string
  browser: Browser
  /** A new browser context (its own storage: another buyer) with a page in it. */
  newBuyer(): Promise<{ context: BrowserContext; page: Page }>
  /** Calls the API directly (as a test fixture, not through the app). */
  api(method: string, path: string, init?: { key?: string; body?: unknown; headers?: Record<string, string> }): Promise<{ status: number; body: unknown }>
  /** Places an order through the API (a fixture: another buyer's purchase). */
  placeOrder(sku: string, quantity: number): Promise<string>
  stop(): Promise<void>
}

export async function startStack(env: Record<string, string> = {}): Promise<Stack> {
  const flashcore = await startFlashcore({ env })
  let server: PreviewServer | null = null
  let browser: Browser | null = null
  try {
    const proxy = Object.fromEntries(['/v1', '/health', '/ready', '/openapi.json'].map((p) => [p, { target: flashcore.url, changeOrigin: false }]))
    server = await preview({
      root,
      configFile: join(root, 'vite.config.ts'),
      logLevel: 'warn',
      preview: { host: '127.0.0.1', port: 0, strictPort: false, proxy, open: false },
    })
    const app = (server.resolvedUrls?.local[0] ?? '').replace(/\/$/, '')
    if (!app) throw new Error('vite preview did not report its address')
    browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--headless', '--no-sandbox', '--disable-gpu'] })
    mkdirSync(RESULTS, { recursive: true })
    const b = browser
    const s = server
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
      async newBuyer() {
        const context = await b.newContext({ baseURL: app, viewport: { width: 390, height: 844 } })
        const page = await context.newPage()
        page.setDefaultTimeout(15_000)
        return { context, page }
      },
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
        await new Promise<void>((res) => s.httpServer.close(() => res()))
        await flashcore.stop()
      },
    }
  } catch (e) {
    await browser?.close()
    if (server) await new Promise<void>((res) => server!.httpServer.close(() => res()))
    await flashcore.stop()
    throw e
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
