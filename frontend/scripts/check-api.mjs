// Fails when src/api/schema.d.ts is not what `gen:api` makes from openapi.json
// (regenerated into a temp file with the same command, then compared).
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const dir = mkdtempSync(join(tmpdir(), 'fc-api-'))
const out = join(dir, 'schema.d.ts')
try {
  execFileSync(join(root, 'node_modules/.bin/openapi-typescript'), ['openapi.json', '-o', out], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] })
  const fresh = readFileSync(out, 'utf8')
  const committed = readFileSync(join(root, 'src/api/schema.d.ts'), 'utf8')
  if (fresh !== committed) {
    console.error('src/api/schema.d.ts is out of date with openapi.json: run `npm run gen:api` and commit the result.')
    process.exit(1)
  }
  console.log('check:api: src/api/schema.d.ts matches openapi.json')
} finally {
  rmSync(dir, { recursive: true, force: true })
}
