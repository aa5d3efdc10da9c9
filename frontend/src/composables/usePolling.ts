/**
 * Runs `task` now and then `intervalMs` after each run ends (never two at once),
 * until the component goes away or `stop()` is called.
 */
import { getCurrentScope, onScopeDispose, ref, type Ref } from 'vue'

export interface Polling {
  running: Ref<boolean>
  stop(): void
  /** Runs the task now (the next run is scheduled from its end). */
  now(): Promise<void>
}

export function usePolling(task: () => Promise<void>, intervalMs: number): Polling {
  const running = ref(true)
  let timer: ReturnType<typeof setTimeout> | null = null
  let inFlight: Promise<void> | null = null

  async function run(): Promise<void> {
    if (timer !== null) clearTimeout(timer)
    timer = null
    if (inFlight) return inFlight
    inFlight = (async () => {
      try {
        await task()
      } catch {
        // the task shows its own errors; polling goes on
      } finally {
        inFlight = null
        if (running.value) timer = setTimeout(() => void run(), intervalMs)
      }
    })()
    return inFlight
  }

  function stop() {
    running.value = false
    if (timer !== null) clearTimeout(timer)
    timer = null
  }

  void run()
  if (getCurrentScope()) onScopeDispose(stop)
  return { running, stop, now: run }
}
