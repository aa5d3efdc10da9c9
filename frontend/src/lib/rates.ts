/** Per-second rates and bounded time series for the operator console's charts. */

export interface Point {
  /** Local time, ms. */
  t: number
  v: number
}

/** `(cur - prev) / seconds between them`, or null when there is no earlier sample, time did not move, or a counter went back (a restart). */
export function ratePerSecond(prev: Point | null, cur: Point): number | null {
  if (!prev) return null
  const dt = (cur.t - prev.t) / 1000
  if (dt <= 0) return null
  const dv = cur.v - prev.v
  if (dv < 0) return null
  return dv / dt
}

/** The last `capacity` points of one series. */
export class Series {
  private readonly buf: Point[] = []

  constructor(readonly capacity: number = 60) {}

  push(p: Point): void {
    this.buf.push(p)
    if (this.buf.length > this.capacity) this.buf.splice(0, this.buf.length - this.capacity)
  }

  /** A copy, so a view given it sees a new value after each push. */
  points(): readonly Point[] {
    return this.buf.slice()
  }

  last(): Point | undefined {
    return this.buf[this.buf.length - 1]
  }
}

/** SVG polyline points for `points` in a `width` × `height` box (y grows downwards; 0 at the bottom). */
export function polyline(points: readonly Point[], width: number, height: number, yMax?: number): string {
  if (points.length === 0) return ''
  const first = points[0]!
  const last = points[points.length - 1]!
  const span = Math.max(1, last.t - first.t)
  const top = Math.max(yMax ?? 0, ...points.map((p) => p.v), 1e-9)
  return points
    .map((p) => {
      const x = points.length === 1 ? width : ((p.t - first.t) / span) * width
      const y = height - (p.v / top) * height
      return `${x.toFixed(1)},${y.toFixed(1)}`
    })
    .join(' ')
}
