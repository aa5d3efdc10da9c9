import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { flashcoreBin } from '../../scripts/flashcore.mjs'
import { chromiumPath, DIST } from './harness'

/** Fails fast, with what to do, when something the browser tests need is missing. */
export default function setup(): void {
  if (!existsSync(join(DIST, 'index.html'))) throw new Error('dist/index.html is missing: run `npm run build` first (the flashcore binary serves dist/ to the browser tests)')
  if (!existsSync(chromiumPath())) throw new Error(`${chromiumPath()} is missing: apt-get install -y chromium (or set CHROMIUM_BIN)`)
  if (!existsSync(flashcoreBin())) throw new Error(`flashcore binary missing at ${flashcoreBin()}: build it or set FLASHCORE_BIN`)
}
