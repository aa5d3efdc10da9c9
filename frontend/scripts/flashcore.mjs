// Starts a real flashcore binary for the browser tests and for `fetch:api`:
// in-memory store, port 0, the bound address read from its JSON log line
// `flashcore listening`, then `/ready` polled until it answers 200.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))

/** The binary: `FLASHCORE_BIN`, else `../target/release/flashcore` from frontend/. */
export function flashcoreBin() {
  return resolve(here, '..', process.env.FLASHCORE_BIN ?? '../target/release/flashcore')
}

/** A test admin key of 40 characters. */
export const TEST_ADMIN_KEY = 'fck_frontend_test_admin_key_0123456789ab'

/**
 * @typedef {object} Flashcore
 * @property {string} url  e.g. http://127.0.0.1:41234
 * @property {string} adminKey
 * @property {() => Promise<void>} stop
 * @property {() => string} logs  what it printed so far (for failure messages)
 */

/**
 * @param {{ env?: Record<string, string>, readyTimeoutMs?: number }} [options]
 * @returns {Promise<Flashcore>}
 */
export async function startFlashcore(options = {}) {
  const bin = flashcoreBin()
  if (!existsSync(bin)) {
    throw new Error(`flashcore binary not found at ${bin}: build it (cargo build --release -p flashcore-http --bin flashcore) or set FLASHCORE_BIN`)
  }
  const dataDir = mkdtempSync(join(tmpdir(), 'fc-frontend-'))
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    FLASHCORE_ADDR: '127.0.0.1:0',
    FLASHCORE_STORE: 'memory',
    FLASHCORE_DATA_DIR: dataDir,
    FLASHCORE_RATE_CLIENT: 'off',
    FLASHCORE_ADMIN_KEY: TEST_ADMIN_KEY,
    FLASHCORE_TOKEN_SECRET: 'frontend-test-token-secret-0123456789abcdef',
    FLASHCORE_LOG_FORMAT: 'json',
    RUST_LOG: 'info',
    // An instrumented binary (make test's coverage) writes its counters there.
    ...(process.env.LLVM_PROFILE_FILE ? { LLVM_PROFILE_FILE: process.env.LLVM_PROFILE_FILE } : {}),
    ...options.env,
  }
  const child = spawn(bin, [], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  /** @type {string[]} */
  const lines = []
  const keep = (/** @type {string} */ l) => {
    lines.push(l)
    if (lines.length > 400) lines.shift()
  }
  createInterface({ input: child.stderr }).on('line', keep)
  const exited = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })))

  const addr = await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`flashcore did not log its address within 20 s:\n${lines.join('\n')}`)), 20_000)
    createInterface({ input: child.stdout }).on('line', (line) => {
      keep(line)
      try {
        const o = JSON.parse(line)
        const f = o.fields ?? o
        const message = f.message ?? o.message
        const a = f.addr ?? o.addr
        if (message === 'flashcore listening' && typeof a === 'string') {
          clearTimeout(timer)
          res(a)
        }
      } catch {
        // not a JSON line
      }
    })
    void exited.then((/** @type {any} */ e) => {
      clearTimeout(timer)
      rej(new Error(`flashcore exited (${e.code ?? e.signal}) before listening:\n${lines.join('\n')}`))
    })
  })
  const url = `http://${addr}`
  const deadline = Date.now() + (options.readyTimeoutMs ?? 20_000)
  for (;;) {
    try {
      const r = await fetch(`${url}/ready`)
      if (r.ok) break
    } catch {
      // not accepting yet
    }
    if (Date.now() > deadline) throw new Error(`flashcore at ${url} not ready in time:\n${lines.join('\n')}`)
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    url,
    adminKey: TEST_ADMIN_KEY,
    logs: () => lines.join('\n'),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000)
        await exited
        clearTimeout(t)
      }
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
