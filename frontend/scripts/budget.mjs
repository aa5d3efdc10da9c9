// The bundle budget: the storefront's JavaScript (everything reachable from the
// entry except the operator console's lazy chunks) must stay within 100 KiB
// gzipped. Reads Vite's manifest; exits 1 when over.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'

export const STOREFRONT_BUDGET = 100 * 1024

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist')

/** @typedef {{ file: string, src?: string, isEntry?: boolean, imports?: string[], dynamicImports?: string[], css?: string[] }} Chunk */

/** @returns {Record<string, Chunk>} */
function manifest() {
  return JSON.parse(readFileSync(join(dist, '.vite', 'manifest.json'), 'utf8'))
}

/** @param {string} file */
function gz(file) {
  return gzipSync(readFileSync(join(dist, file)), { level: 9 }).length
}

/** Chunks reachable from `start`, following static imports and the dynamic imports `follow` accepts. */
function reach(/** @type {Record<string, Chunk>} */ m, /** @type {string[]} */ start, /** @type {(k: string) => boolean} */ follow) {
  const seen = new Set()
  const todo = [...start]
  while (todo.length) {
    const k = /** @type {string} */ (todo.pop())
    if (seen.has(k) || !m[k]) continue
    seen.add(k)
    todo.push(...(m[k].imports ?? []))
    todo.push(...(m[k].dynamicImports ?? []).filter(follow))
  }
  return seen
}

const m = manifest()
const entries = Object.keys(m).filter((k) => m[k]?.isEntry)
const isConsole = (/** @type {string} */ k) => k.startsWith('src/ops/')
const store = reach(m, entries, (k) => !isConsole(k))
const all = reach(m, entries, () => true)
const consoleOnly = [...all].filter((k) => !store.has(k))

const size = (/** @type {Iterable<string>} */ keys) => [...keys].reduce((a, k) => a + gz(/** @type {Chunk} */ (m[k]).file), 0)
const css = (/** @type {Iterable<string>} */ keys) => [...new Set([...keys].flatMap((k) => m[k]?.css ?? []))].reduce((a, f) => a + gz(f), 0)
const kib = (/** @type {number} */ b) => `${(b / 1024).toFixed(1)} KiB`

const storeJs = size(store)
const initial = size(reach(m, entries, () => false))
console.log(`storefront JS: ${kib(storeJs)} gzipped (first load ${kib(initial)}), budget ${kib(STOREFRONT_BUDGET)}`)
console.log(`storefront CSS: ${kib(css(store))} gzipped`)
console.log(`console-only JS: ${kib(size(consoleOnly))} gzipped`)
if (storeJs > STOREFRONT_BUDGET) {
  console.error(`over budget by ${kib(storeJs - STOREFRONT_BUDGET)}`)
  process.exit(1)
}
