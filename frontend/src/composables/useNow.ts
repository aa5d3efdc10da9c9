/**
 * The server's time as a reactive value, ticking while any component uses it.
 * One interval for the whole app however many countdowns are on screen.
 */
import { getCurrentScope, onScopeDispose, readonly, ref, type Ref } from 'vue'
import { serverClock, type ServerClock } from '@/lib/serverClock'

const TICK_MS = 250

interface Ticker {
  now: Ref<number>
  users: number
  timer: ReturnType<typeof setInterval> | null
}

const tickers = new WeakMap<ServerClock, Ticker>()

/** Server time in ms, updated every 250 ms. */
export function useServerNow(clock: ServerClock = serverClock): Readonly<Ref<number>> {
  let t = tickers.get(clock)
  if (!t) {
    t = { now: ref(clock.now()), users: 0, timer: null }
    tickers.set(clock, t)
  }
  const ticker = t
  ticker.users += 1
  ticker.now.value = clock.now()
  if (ticker.timer === null) {
    ticker.timer = setInterval(() => {
      ticker.now.value = clock.now()
    }, TICK_MS)
  }
  if (getCurrentScope()) {
    onScopeDispose(() => {
      ticker.users -= 1
      if (ticker.users === 0 && ticker.timer !== null) {
        clearInterval(ticker.timer)
        ticker.timer = null
      }
    })
  }
  return readonly(ticker.now)
}
