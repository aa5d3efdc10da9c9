/**
 * An estimate of the server's clock from HTTP `Date` headers.
 *
 * A `Date` header has one-second resolution and was stamped at some moment while
 * the request was in flight. So one response tells that the offset
 * (server time minus local time) lies in `[date - receivedAt, date + 1000 - sentAt]`.
 * Intersecting those intervals over several responses narrows the estimate to well
 * under a second; the middle of the intersection is used. If a new sample does
 * not overlap (the local clock jumped, or the server's did), the estimate starts
 * over from that sample.
 */
export class ServerClock {
  private low = Number.NEGATIVE_INFINITY
  private high = Number.POSITIVE_INFINITY
  private samples = 0

  constructor(private readonly localNow: () => number = () => Date.now()) {}

  /** Takes one response into account: its `Date` header and when it was sent and received (local ms). */
  observe(dateHeader: string | null | undefined, sentAt: number, receivedAt: number): void {
    if (!dateHeader) return
    const date = Date.parse(dateHeader)
    if (Number.isNaN(date) || receivedAt < sentAt) return
    const low = date - receivedAt
    const high = date + 1000 - sentAt
    if (this.samples > 0 && (low > this.high || high < this.low)) {
      this.samples = 0
    }
    if (this.samples === 0) {
      this.low = low
      this.high = high
    } else {
      this.low = Math.max(this.low, low)
      this.high = Math.min(this.high, high)
    }
    this.samples += 1
  }

  /** Server time minus local time, in ms (0 until a response was seen). */
  offsetMs(): number {
    return this.samples === 0 ? 0 : (this.low + this.high) / 2
  }

  /** How far off the estimate may be, in ms (half the interval; Infinity before any sample). */
  uncertaintyMs(): number {
    return this.samples === 0 ? Number.POSITIVE_INFINITY : (this.high - this.low) / 2
  }

  /** The server's time now, in ms since the epoch. */
  now(): number {
    return this.localNow() + this.offsetMs()
  }

  /** Whether any `Date` header has been seen. */
  synced(): boolean {
    return this.samples > 0
  }
}

/** The one clock of the app, fed by the API client. */
export const serverClock = new ServerClock()
