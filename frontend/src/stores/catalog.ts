/**
 * The product catalog, loaded page by page (keyset paging on `next_cursor`).
 * The server has no search parameter, so search and filters apply to loaded
 * products, and a search loads the remaining pages so nothing is missed.
 */
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api, unwrap, type Product } from '@/api/client'

export type StockFilter = 'all' | 'in-stock' | 'on-sale' | 'upcoming'

export const PAGE_SIZE = 24

/** Whether `p` matches the search words and the filter. */
export function matches(p: Product, query: string, filter: StockFilter): boolean {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean)
  const text = `${p.sku} ${p.title} ${p.description}`.toLowerCase()
  if (!words.every((w) => text.includes(w))) return false
  switch (filter) {
    case 'in-stock':
      return p.available > 0 && p.on_sale
    case 'on-sale':
      return p.on_sale
    case 'upcoming':
      return !p.on_sale
    default:
      return true
  }
}

export const useCatalogStore = defineStore('catalog', () => {
  const items = ref<Product[]>([])
  const nextCursor = ref<string | null>(null)
  const started = ref(false)
  const loading = ref(false)
  const query = ref('')
  const filter = ref<StockFilter>('all')

  const done = computed(() => started.value && nextCursor.value === null)
  const visible = computed(() => items.value.filter((p) => matches(p, query.value, filter.value)))

  /** Loads the next page (the first if none yet). */
  async function loadMore(limit: number = PAGE_SIZE): Promise<void> {
    if (loading.value || done.value) return
    loading.value = true
    try {
      const page = await unwrap(
        api.GET('/v1/products', { params: { query: { limit, ...(nextCursor.value ? { cursor: nextCursor.value } : {}) } } }),
      )
      items.value = [...items.value, ...page.items]
      nextCursor.value = page.next_cursor ?? null
      started.value = true
    } finally {
      loading.value = false
    }
  }

  /** Loads every remaining page (bounded by the catalog's size). */
  async function loadAll(): Promise<void> {
    while (!done.value) await loadMore(100)
  }

  /** Forgets what was loaded, e.g. to see fresh availability. */
  async function reload(): Promise<void> {
    items.value = []
    nextCursor.value = null
    started.value = false
    await loadMore()
  }

  return { items, nextCursor, loading, query, filter, done, visible, loadMore, loadAll, reload }
})
