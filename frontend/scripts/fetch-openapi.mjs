// Writes the server's OpenAPI document to openapi.json (the snapshot `gen:api`
// generates from): from FLASHCORE_URL if set, else from a flashcore started here.
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startFlashcore } from './flashcore.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/** @param {string} url */
async function fetchDoc(url) {
  const r = await fetch(`${url}/openapi.json`)
  if (!r.ok) throw new Error(`GET ${url}/openapi.json: ${r.status}`)
  return r.json()
}

const given = process.env.FLASHCORE_URL
let doc
if (given) {
  doc = await fetchDoc(given)
} else {
  const fc = await startFlashcore()
  try {
    doc = await fetchDoc(fc.url)
  } finally {
    await fc.stop()
  }
}
writeFileSync(join(root, 'openapi.json'), `${JSON.stringify(doc, null, 2)}\n`)
console.log('wrote openapi.json; now run: npm run gen:api')
