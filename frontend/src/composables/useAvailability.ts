/**
 * Live availability of one SKU from its Server-Sent Events stream
 * (`event: availability`, data `{sku, available, total}`). EventSource reconnects
 * by itself; `live` tells whether the stream is open right now.
 */
import { getCurrentScope, onScopeDispose, ref, toValue, watch, type MaybeRefOrGetter, type Ref } from 'vue'
import { availabilityUrl, parseAvailability, type Availability } from '@/api/client'

/** The parts of EventSource used here, so tests can hand in a fake. */
export interface EventSourceLike {
  addEventListener(type: string, listener: (ev: MessageEvent<string>) => void): void
  onopen: ((ev: Event) => void) | null
  onerror: ((ev: Event) => void) | null
  close(): void
  readonly readyState: number
}

export type OpenEventSource = (url: string) => EventSourceLike

const openBrowserEventSource: OpenEventSource = (url) => new EventSource(url)

export interface LiveAvailability {
  availability: Ref<Availability | null>
  live: Ref<boolean>
  /** Events received (for the "updated" flash and for tests). */
  updates: Ref<number>
}

export function useAvailability(
  sku: MaybeRefOrGetter<string | null | undefined>,
  open: OpenEventSource = openBrowserEventSource,
): LiveAvailability {
  const availability = ref<Availability | null>(null)
  const live = ref(false)
  const updates = ref(0)
  let source: EventSourceLike | null = null

  function close() {
    source?.close()
    source = null
    live.value = false
  }

  watch(
    () => toValue(sku),
    (code) => {
      close()
      availability.value = null
      if (!code) return
      const es = open(availabilityUrl(code))
      source = es
      es.onopen = () => {
        live.value = true
      }
      es.onerror = () => {
        // 2 = CLOSED: the server refused the stream (e.g. 404) and EventSource gave up.
        live.value = false
      }
      es.addEventListener('availability', (ev) => {
        const a = parseAvailability(ev.data)
        if (a && a.sku === code) {
          availability.value = a
          live.value = true
          updates.value += 1
        }
      })
    },
    { immediate: true },
  )

  if (getCurrentScope()) onScopeDispose(close)

  return { availability, live, updates }
}
