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
  /** The running wait retries by itself when it ends (it was started with `then`). */
  automatic: ComputedRef<boolean>
  /** Starts (or restarts) a wait of `secs`; `then` runs when it ends. */
  start(secs: number, then?: () => void): void
  cancel(): void
}

export function useRetryCountdown(now: () => number = () => Date.now()): RetryCountdown {
  const until: Ref<number | null> = ref(null)
  const tick = ref(now())
  let timer: ReturnType<typeof setInterval> | null = null
  let after: (() => void) | undefined
  const hasAfter = ref(false)

  function stop() {
    if (timer !== null) clearInterval(timer)
    timer = null
  }

  function start(secs: number, then?: () => void) {
    stop()
    after = then
    hasAfter.value = then !== undefined
    until.value = now() + Math.max(0, secs) * 1000
    tick.value = now()
    timer = setInterval(() => {
      tick.value = now()
      if (until.value !== null && tick.value >= until.value) {
        stop()
        until.value = null
        const run = after
        after = undefined
        hasAfter.value = false
        run?.()
      }
    }, 200)
  }

  function cancel() {
    stop()
    until.value = null
    after = undefined
    hasAfter.value = false
  }

  if (getCurrentScope()) onScopeDispose(cancel)

  return {
    secondsLeft: computed(() => (until.value === null ? 0 : Math.max(0, Math.ceil((until.value - tick.value) / 1000)))),
    waiting: computed(() => until.value !== null),
    automatic: computed(() => until.value !== null && hasAfter.value),
    start,
    cancel,
  }
}
