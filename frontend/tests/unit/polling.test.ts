import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { effectScope } from 'vue'
import { usePolling } from '@/composables/usePolling'

/** A task whose runs end only when the test says so. */
function gatedTask() {
  const ends: (() => void)[] = []
  let started = 0
  const task = () => {
    started += 1
    return new Promise<void>((resolve) => ends.push(resolve))
  }
  return { task, started: () => started, endRun: () => ends.shift()?.() }
}

describe('usePolling runs its task one at a time, each run an interval after the last one ended', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  it('waits for a slow run to end before counting the interval, and never overlaps runs', async () => {
    const t = gatedTask()
    const poll = usePolling(t.task, 1_000)
    expect(t.started()).toBe(1)
    // The run takes longer than the interval: no second run starts meanwhile.
    await vi.advanceTimersByTimeAsync(5_000)
    expect(t.started()).toBe(1)
    // `now()` during a run joins it instead of starting another.
    const joined = poll.now()
    expect(t.started()).toBe(1)
    t.endRun()
    await joined
    await vi.advanceTimersByTimeAsync(999)
    expect(t.started()).toBe(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(t.started()).toBe(2)
    poll.stop()
  })

  it('keeps polling after a run fails', async () => {
    let runs = 0
    const poll = usePolling(() => {
      runs += 1
      return Promise.reject(new Error('503'))
    }, 500)
    await vi.advanceTimersByTimeAsync(1_000)
    expect(runs).toBe(3)
    expect(poll.running.value).toBe(true)
    poll.stop()
  })

  it('runs now on demand, restarting the interval from that run', async () => {
    let runs = 0
    const poll = usePolling(() => {
      runs += 1
      return Promise.resolve()
    }, 1_000)
    await vi.advanceTimersByTimeAsync(600)
    await poll.now()
    expect(runs).toBe(2)
    // The timer left from the first run was replaced: the next run is 1 s after `now()`.
    await vi.advanceTimersByTimeAsync(900)
    expect(runs).toBe(2)
    await vi.advanceTimersByTimeAsync(100)
    expect(runs).toBe(3)
    poll.stop()
  })

  it('stops when its component scope goes away, and after stop() nothing runs again', async () => {
    let runs = 0
    const scope = effectScope()
    const poll = scope.run(() =>
      usePolling(() => {
        runs += 1
        return Promise.resolve()
      }, 100),
    )!
    await vi.advanceTimersByTimeAsync(100)
    expect(runs).toBe(2)
    scope.stop()
    expect(poll.running.value).toBe(false)
    await vi.advanceTimersByTimeAsync(1_000)
    expect(runs).toBe(2)
  })
})
