/**
 * The problem a view shows, in words, with the `Retry-After` counted down.
 * When the server said when to come back (`Retry-After`), the action is retried by
 * itself at most `maxAutoRetries` times in a row; otherwise the buyer retries.
 */
import { ref, type Ref } from 'vue'
import { ApiProblem } from '@/api/problem'
import { describeApiProblem, type BuyerMessage } from '@/problems/messages'
import { useRetryCountdown, type RetryCountdown } from './useRetryCountdown'

export interface ProblemState {
  message: Ref<BuyerMessage | null>
  countdown: RetryCountdown
  /** Shows `e` (an ApiProblem; anything else is rethrown); `retry` is what to run again. */
  show(e: unknown, retry?: () => void): BuyerMessage
  clear(): void
}

export function useProblem(maxAutoRetries = 5): ProblemState {
  const message = ref<BuyerMessage | null>(null)
  const countdown = useRetryCountdown()
  let autoRetries = 0
  /** Set while an automatic retry starts: its own `clear()` must not reset the count. */
  let autoRetrying = false

  function show(e: unknown, retry?: () => void): BuyerMessage {
    if (!(e instanceof ApiProblem)) throw e
    const m = describeApiProblem(e)
    message.value = m
    if (m.remedy === 'retry') {
      const auto = retry !== undefined && e.retryAfterSecs !== null && autoRetries < maxAutoRetries
      if (auto) autoRetries += 1
      countdown.start(
        m.retryAfterSecs ?? 0,
        auto
          ? () => {
              autoRetrying = true
              try {
                retry()
              } finally {
                autoRetrying = false
              }
            }
          : undefined,
      )
    } else {
      countdown.cancel()
    }
    return m
  }

  function clear() {
    message.value = null
    countdown.cancel()
    // The actions clear the problem as they start; only one the buyer started begins a new run.
    if (!autoRetrying) autoRetries = 0
  }

  return { message, countdown, show, clear }
}
