import { afterEach, describe, expect, it, vi } from 'vitest'
import { effectScope, nextTick } from 'vue'
import { useCountdown, remainingMs } from '@/composables/useCountdown'
import { ServerClock } from '@/lib/serverClock'

/** A `Date` header for server time `ms` (truncated to the second, as HTTP does). */
const header = (ms: number) => new Date(ms).toUTCString()

describe('ServerClock', () => {
  it('is local time until a Date header was seen', () => {
    const clock = new ServerClock(() => 1_000_000)
    expect(clock.synced()).toBe(false)
    expect(clock.now()).toBe(1_000_000)
  })

  it('estimates a server running an hour ahead to within a second from one response', () => {
    const local = 1_700_000_000_000
    const server = local + 3_600_000 + 400
    const clock = new ServerClock(() => local + 100)
    clock.observe(header(server + 50), local, local + 100)
    expect(Math.abs(clock.offsetMs() - (server - local))).toBeLessThanOrEqual(1000)
  })

  it('narrows the estimate as responses accumulate', () => {
    const trueOffset = -12_345
    let local = 1_700_000_000_000
    const clock = new ServerClock(() => local)
    const widths: number[] = []
    for (let i = 0; i < 8; i++) {
      const sent = local
      const stamped = sent + 20 + trueOffset // the server stamps 20 ms after the request left
      local += 40
      clock.observe(header(stamped), sent, local)
      widths.push(clock.uncertaintyMs())
      local += 137 // requests at odd moments cover different sub-second phases
    }
    expect(widths[widths.length - 1]).toBeLessThan(widths[0]!)
    expect(Math.abs(clock.offsetMs() - trueOffset)).toBeLessThanOrEqual(clock.uncertaintyMs())
    expect(clock.uncertaintyMs()).toBeLessThan(200)
  })

  it('starts over when the clocks jump apart', () => {
    const clock = new ServerClock(() => 0)
    clock.observe(header(10_000_000), 0, 10)
    clock.observe(header(10_000_000 + 3_600_000), 20, 30)
    expect(Math.abs(clock.offsetMs() - (10_000_000 + 3_600_000))).toBeLessThanOrEqual(1000)
  })

  it('ignores missing or malformed headers', () => {
    const clock = new ServerClock(() => 5)
    clock.observe(null, 0, 1)
    clock.observe('not a date', 0, 1)
    expect(clock.synced()).toBe(false)
  })
})

describe('countdown to the sale start follows server time', () => {
  afterEach(() => vi.useRealTimers())

  it('counts from the server clock, not the local one', () => {
    const local = Date.parse('2030-01-01T12:00:00Z')
    const clock = new ServerClock(() => local)
    // The server is 10 minutes ahead of this machine.
    clock.observe(header(local + 600_000), local, local)
    const start = '2030-01-01T12:30:00Z'
    const left = remainingMs(start, clock.now())!
    // 20 minutes from the server's point of view (30 by the local clock), within the header's 1 s resolution.
    expect(left).toBeGreaterThan(20 * 60_000 - 1000)
    expect(left).toBeLessThanOrEqual(20 * 60_000)
  })

  it('reaches zero when server time passes the start, and enables the sale', async () => {
    vi.useFakeTimers()
    const base = Date.parse('2030-01-01T12:00:00Z')
    vi.setSystemTime(base)
    const clock = new ServerClock()
    clock.observe(header(base + 5000), base, base) // server 5 s ahead (±1 s)
    const scope = effectScope()
    const c = scope.run(() => useCountdown('2030-01-01T12:00:08Z', clock))!
    expect(c.reached.value).toBe(false)
    const firstLeft = c.remaining.value!
    expect(firstLeft).toBeGreaterThan(2000)
    expect(firstLeft).toBeLessThanOrEqual(3500)
    vi.advanceTimersByTime(firstLeft + 300)
    await nextTick()
    expect(c.remaining.value).toBe(0)
    expect(c.reached.value).toBe(true)
    scope.stop()
  })

  it('has nothing to count without a start', () => {
    const scope = effectScope()
    const c = scope.run(() => useCountdown(null, new ServerClock()))!
    expect(c.remaining.value).toBeNull()
    expect(c.reached.value).toBe(true)
    scope.stop()
  })
})
