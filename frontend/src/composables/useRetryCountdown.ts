/**
 * Counts a `Retry-After` down, then lets the caller retry (or retries by itself
 * when `auto` is set). Local time is enough here: Retry-After is a duration.
 */
import { computed, getCurrentScope, onScopeDispose, ref, type ComputedRef, type Ref } from 'vue'

export interface RetryCountdown {
  /** Whole seconds left (0 when ready). */
  secondsLeft: ComputedRef<number>
  /** A wait is running. */
  waiting: ComputedRef<boolean>
  /** Starts (or restarts) a wait of `secs`; `then` runs when it ends. */
  start(secs: number, then?: () => void): void
  cancel(): void
}

export function useRetryCountdown(now: () => number = () => Date.now()): RetryCountdown {
  const until: Ref<number | null> = ref(null)
  const tick = ref(now())
  let timer: ReturnType<typeof setInterval> | null = null
  let after: (() => void) | undefined

  function stop() {
    if (timer !== null) clearInterval(timer)
    timer = null
  }

  function start(secs: number, then?: () => void) {
    stop()
    after = then
    until.value = now() + Math.max(0, secs) * 1000
    tick.value = now()
    timer = setInterval(() => {
      tick.value = now()
      if (until.value !== null && tick.value >= until.value) {
        stop()
        until.value = null
        const run = after
        after = undefined
        run?.()
      }
    }, 200)
  }

  function cancel() {
    stop()
    until.value = null
    after = undefined
  }

  if (getCurrentScope()) onScopeDispose(cancel)

  return {
    secondsLeft: computed(() => (until.value === null ? 0 : Math.max(0, Math.ceil((until.value - tick.value) / 1000)))),
    waiting: computed(() => until.value !== null),
    start,
    cancel,
  }
}
