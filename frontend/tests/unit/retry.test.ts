import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ApiProblem, toProblem } from '@/api/problem'
import { useProblem } from '@/composables/useProblem'

const limited = () =>
  new ApiProblem(toProblem({ code: 'rate-limited', status: 429, title: 'Too many requests', detail: 'Slow down.' }, { status: 429, statusText: '' }), 1)

describe('useProblem retries by itself a bounded number of times, and says when it stops', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  it('counts each Retry-After down as automatic until the limit, then leaves the retry to the buyer', () => {
    const problem = useProblem(2)
    let tries = 0
    const action = () => {
      tries += 1
      problem.clear() // as the actions do when they start
      problem.show(limited(), action)
    }
    problem.show(limited(), action)
    expect(problem.countdown.automatic.value).toBe(true)
    vi.advanceTimersByTime(1_200)
    expect(tries).toBe(1)
    expect(problem.countdown.automatic.value).toBe(true)
    vi.advanceTimersByTime(1_200)
    expect(tries).toBe(2)
    // The limit is reached: this wait is the buyer's, and nothing runs after it.
    expect(problem.countdown.waiting.value).toBe(true)
    expect(problem.countdown.automatic.value).toBe(false)
    vi.advanceTimersByTime(5_000)
    expect(tries).toBe(2)
    expect(problem.countdown.secondsLeft.value).toBe(0)
    // A retry the buyer starts begins a new run of automatic retries.
    problem.clear()
    problem.show(limited(), action)
    expect(problem.countdown.automatic.value).toBe(true)
  })
})
