/** A countdown to an RFC 3339 instant on the server's clock. */
import { computed, toValue, type ComputedRef, type MaybeRefOrGetter } from 'vue'
import { serverClock, type ServerClock } from '@/lib/serverClock'
import { useServerNow } from './useNow'

/** Milliseconds from `serverNow` until `targetIso` (negative once passed; null without a target). */
export function remainingMs(targetIso: string | null | undefined, serverNow: number): number | null {
  if (!targetIso) return null
  const at = Date.parse(targetIso)
  return Number.isNaN(at) ? null : at - serverNow
}

export interface Countdown {
  /** ms left, never below 0; null without a target. */
  remaining: ComputedRef<number | null>
  /** The instant has passed on the server's clock (true without a target). */
  reached: ComputedRef<boolean>
}

export function useCountdown(target: MaybeRefOrGetter<string | null | undefined>, clock: ServerClock = serverClock): Countdown {
  const now = useServerNow(clock)
  const raw = computed(() => remainingMs(toValue(target), now.value))
  return {
    remaining: computed(() => (raw.value === null ? null : Math.max(0, raw.value))),
    reached: computed(() => raw.value === null || raw.value <= 0),
  }
}
