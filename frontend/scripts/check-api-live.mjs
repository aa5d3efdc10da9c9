// Fails when the server's /openapi.json is not the committed snapshot openapi.json
// (compared as JSON, key order aside): the client must be regenerated from it
// (`npm run fetch:api && npm run gen:api`).
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startFlashcore } from './flashcore.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/** @param {unknown} v @returns {unknown} */
function canonical(v) {
  if (Array.isArray(v)) return v.map(canonical)
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(/** @type {Record<string, unknown>} */ (v)[k])]))
  }
  return v
}

const fc = await startFlashcore()
let live
try {
  const r = await fetch(`${fc.url}/openapi.json`)
  if (!r.ok) throw new Error(`GET /openapi.json: ${r.status}`)
  live = await r.json()
} finally {
  await fc.stop()
}
const snapshot = JSON.parse(readFileSync(join(root, 'openapi.json'), 'utf8'))
if (JSON.stringify(canonical(live)) !== JSON.stringify(canonical(snapshot))) {
  console.error('The server’s /openapi.json differs from frontend/openapi.json: run `npm run fetch:api && npm run gen:api`, fix what no longer type-checks, and commit.')
  process.exit(1)
}
console.log('check:api:live: the server’s /openapi.json matches frontend/openapi.json')
