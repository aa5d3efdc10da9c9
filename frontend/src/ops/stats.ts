/**
 * The operator views `GET /v1/admin/actors` and `GET /v1/admin/journal`, and the
 * time series the overview charts derive from them once a second.
 *
 * The OpenAPI document declares these two responses without a schema, so their
 * shape is written down here (from the server's real answers) and checked at run
 * time: a figure that is missing reads as absent, not as zero.
 */
import { isRecord } from '@/lib/storage'
import { ratePerSecond, Series, type Point } from '@/lib/rates'

export interface Supervisor {
  kind: string
  active: number
  starts: number
  stops: number
  failures: number
  restarts: number
  passivations: number
  rejections: number
  quarantined: number
  mailbox_depth: number
  hot: [string, number][]
}

export interface JournalFigures {
  batches: number
  entries: number
  last_batch_size: number
  max_batch_size: number
  last_commit_micros: number
  errors: number
  last_error: string | null
  queue_depth: number
}

export interface WriteBehindFigures {
  flushes: number
  written: number
  last_batch_size: number
  last_flush_micros: number
  retry_pending: number
  errors: number
  last_error: string | null
}

export interface Snapshot {
  /** Local time of the sample, ms. */
  at: number
  supervisors: Supervisor[]
  journal: JournalFigures | null
  writeBehind: WriteBehindFigures | null
}

const n = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0)
const s = (v: unknown): string | null => (typeof v === 'string' ? v : null)

function parseSupervisor(v: unknown): Supervisor | null {
  if (!isRecord(v) || typeof v.kind !== 'string') return null
  const hot = Array.isArray(v.hot)
    ? v.hot.flatMap((h): [string, number][] => (Array.isArray(h) && typeof h[0] === 'string' ? [[h[0], n(h[1])]] : []))
    : []
  return {
    kind: v.kind,
    active: n(v.active),
    starts: n(v.starts),
    stops: n(v.stops),
    failures: n(v.failures),
    restarts: n(v.restarts),
    passivations: n(v.passivations),
    rejections: n(v.rejections),
    quarantined: n(v.quarantined),
    mailbox_depth: n(v.mailbox_depth),
    hot,
  }
}

/** `{supervisors: [...]}` from `GET /v1/admin/actors`. */
export function parseActors(body: unknown): Supervisor[] {
  if (!isRecord(body) || !Array.isArray(body.supervisors)) return []
  return body.supervisors.map(parseSupervisor).filter((x): x is Supervisor => x !== null)
}

/** `{journal, write_behind}` from `GET /v1/admin/journal`. */
export function parseJournal(body: unknown): { journal: JournalFigures | null; writeBehind: WriteBehindFigures | null } {
  if (!isRecord(body)) return { journal: null, writeBehind: null }
  const j = body.journal
  const w = body.write_behind
  return {
    journal: isRecord(j)
      ? {
          batches: n(j.batches),
          entries: n(j.entries),
          last_batch_size: n(j.last_batch_size),
          max_batch_size: n(j.max_batch_size),
          last_commit_micros: n(j.last_commit_micros),
          errors: n(j.errors),
          last_error: s(j.last_error),
          queue_depth: n(j.queue_depth),
        }
      : null,
    writeBehind: isRecord(w)
      ? {
          flushes: n(w.flushes),
          written: n(w.written),
          last_batch_size: n(w.last_batch_size),
          last_flush_micros: n(w.last_flush_micros),
          retry_pending: n(w.retry_pending),
          errors: n(w.errors),
          last_error: s(w.last_error),
        }
      : null,
  }
}

function sum(sups: Supervisor[], pick: (x: Supervisor) => number): number {
  return sups.reduce((a, x) => a + pick(x), 0)
}

/**
 * Charts from successive snapshots: journal entries committed per second (orders
 * plus stock changes: the journal does not tell them apart), messages shed per
 * second (rejections: busy or quarantined), restarts per second, and the depth of
 * the journal queue and of the actors' mailboxes.
 */
export class OverviewHistory {
  readonly committed = new Series()
  readonly shed = new Series()
  readonly restarts = new Series()
  readonly queueDepth = new Series()
  readonly mailboxDepth = new Series()
  private prev: Snapshot | null = null

  add(snap: Snapshot): void {
    const prev = this.prev
    const point = (v: number): Point => ({ t: snap.at, v })
    const pointOf = (x: Snapshot, v: number): Point => ({ t: x.at, v })
    if (prev && snap.journal && prev.journal) {
      const r = ratePerSecond(pointOf(prev, prev.journal.entries), point(snap.journal.entries))
      if (r !== null) this.committed.push(point(r))
    }
    if (prev) {
      const shed = ratePerSecond(pointOf(prev, sum(prev.supervisors, (x) => x.rejections)), point(sum(snap.supervisors, (x) => x.rejections)))
      if (shed !== null) this.shed.push(point(shed))
      const restarts = ratePerSecond(pointOf(prev, sum(prev.supervisors, (x) => x.restarts)), point(sum(snap.supervisors, (x) => x.restarts)))
      if (restarts !== null) this.restarts.push(point(restarts))
    }
    if (snap.journal) this.queueDepth.push(point(snap.journal.queue_depth))
    this.mailboxDepth.push(point(sum(snap.supervisors, (x) => x.mailbox_depth)))
    this.prev = snap
  }

  latest(): Snapshot | null {
    return this.prev
  }
}
