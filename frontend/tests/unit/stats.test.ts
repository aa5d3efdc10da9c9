import { describe, expect, it } from 'vitest'
import { polyline, ratePerSecond, Series } from '@/lib/rates'
import { OverviewHistory, parseActors, parseJournal, type Snapshot } from '@/ops/stats'

const actors = (rejections: number, restarts = 0, depth = 0) => ({
  supervisors: [
    { kind: 'sku', active: 3, starts: 3, stops: 0, failures: 0, restarts, passivations: 0, rejections, quarantined: 0, mailbox_depth: depth, hot: [['FLASH-SNEAKER-01', depth]] },
    { kind: 'cart', active: 1, starts: 1, stops: 0, failures: 0, restarts: 0, passivations: 0, rejections: 0, quarantined: 0, mailbox_depth: 0, hot: [] },
  ],
})
const journal = (entries: number, queue = 0) => ({
  journal: { batches: 1, entries, last_batch_size: 1, max_batch_size: 1, last_commit_micros: 120, errors: 0, last_error: null, queue_depth: queue },
  write_behind: { flushes: 1, written: 2, last_batch_size: 2, last_flush_micros: 80, retry_pending: 0, errors: 0, last_error: null },
})
const snap = (at: number, a: unknown, j: unknown): Snapshot => ({ at, supervisors: parseActors(a), ...parseJournal(j) })

describe('operator overview series', () => {
  it('derives committed/s and shed/s from successive snapshots', () => {
    const h = new OverviewHistory()
    h.add(snap(0, actors(0), journal(10)))
    h.add(snap(1000, actors(5), journal(40, 2)))
    h.add(snap(3000, actors(9, 1), journal(50)))
    expect(h.committed.points().map((p) => p.v)).toEqual([30, 5])
    expect(h.shed.points().map((p) => p.v)).toEqual([5, 2])
    expect(h.restarts.points().map((p) => p.v)).toEqual([0, 0.5])
    expect(h.queueDepth.points().map((p) => p.v)).toEqual([0, 2, 0])
  })

  it('skips a rate when a counter went back (the server restarted)', () => {
    expect(ratePerSecond({ t: 0, v: 100 }, { t: 1000, v: 3 })).toBeNull()
    expect(ratePerSecond(null, { t: 1000, v: 3 })).toBeNull()
    expect(ratePerSecond({ t: 1000, v: 1 }, { t: 1000, v: 3 })).toBeNull()
  })

  it('reads missing figures as absent and never throws on odd JSON', () => {
    expect(parseActors(null)).toEqual([])
    expect(parseActors({ supervisors: [{ nokind: 1 }, { kind: 'sku' }] })).toHaveLength(1)
    expect(parseJournal('x')).toEqual({ journal: null, writeBehind: null })
    expect(parseActors(actors(1, 0, 4))[0]!.hot).toEqual([['FLASH-SNEAKER-01', 4]])
  })

  it('keeps a bounded series and draws it inside the box', () => {
    const s = new Series(3)
    for (let i = 0; i < 5; i++) s.push({ t: i * 1000, v: i })
    expect(s.points().map((p) => p.v)).toEqual([2, 3, 4])
    expect(polyline(s.points(), 100, 50)).toBe('0.0,25.0 50.0,12.5 100.0,0.0')
  })
})
