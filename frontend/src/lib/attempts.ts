/**
 * One Idempotency-Key per checkout attempt, kept across the retries of that attempt.
 *
 * An attempt is one request body for one cart. Sending the same body again after a
 * retryable outcome (no answer, 5xx, 429, `idempotency-key-in-use`) is a retry and
 * reuses the key, so the server replays or finishes the first try instead of
 * charging twice. A final outcome (success, declined, stock lost, …) ends the
 * attempt: the next submission is a new attempt with a new key, as is any change
 * of the body (the server would answer 422 `idempotency-key-reused` otherwise).
 */
import { isRetryable } from '@/problems/messages'

export interface Attempt {
  /** What identifies the attempt: the cart and the exact body. */
  fingerprint: string
  /** Its Idempotency-Key. */
  key: string
}

export interface AttemptStore {
  load(): Attempt | null
  save(attempt: Attempt | null): void
}

/** A fresh key: a random UUID. */
export function newIdempotencyKey(): string {
  return globalThis.crypto.randomUUID()
}

/** The fingerprint of a checkout of `cartId` with `body`. */
export function attemptFingerprint(cartId: string, body: unknown): string {
  return JSON.stringify([cartId, body])
}

export class AttemptKeys {
  private current: Attempt | null

  constructor(
    private readonly store: AttemptStore = { load: () => null, save: () => {} },
    private readonly newKey: () => string = newIdempotencyKey,
  ) {
    this.current = store.load()
  }

  /** The key to send for this attempt: the pending one if it is the same attempt, else a new one. */
  keyFor(fingerprint: string): string {
    if (this.current?.fingerprint === fingerprint) return this.current.key
    this.current = { fingerprint, key: this.newKey() }
    this.store.save(this.current)
    return this.current.key
  }

  /** Records the outcome: `null` for success, else the problem code. Only retryable outcomes keep the key. */
  settle(outcome: string | null): void {
    if (outcome !== null && isRetryable(outcome)) return
    this.current = null
    this.store.save(null)
  }

  /** The pending attempt, if a retry would reuse a key. */
  pending(): Attempt | null {
    return this.current
  }
}
