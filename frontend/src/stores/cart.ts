/**
 * The buyer's cart, shared by the product page, the cart page and the header.
 *
 * The cart id and its token are kept in localStorage so the cart survives a reload
 * (the server keeps the lines and holds); so is a pending checkout attempt, so a
 * retry after a reload still reuses its Idempotency-Key. Orders placed from this
 * browser are remembered with the token that may read them.
 */
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api, bearer, unwrap, type Cart, type CheckoutBody, type Order } from '@/api/client'
import { ApiProblem } from '@/api/problem'
import { AttemptKeys, attemptFingerprint, type Attempt } from '@/lib/attempts'
import { isRecord, readJson, writeJson } from '@/lib/storage'

export const CART_STORAGE_KEY = 'flashcore.cart.v1'
export const ORDERS_STORAGE_KEY = 'flashcore.orders.v1'

interface SavedCart {
  cartId: string
  token: string
  attempt: Attempt | null
}

function isAttempt(v: unknown): v is Attempt {
  return isRecord(v) && typeof v.fingerprint === 'string' && typeof v.key === 'string'
}

function isSavedCart(v: unknown): v is SavedCart {
  return (
    isRecord(v) &&
    typeof v.cartId === 'string' &&
    typeof v.token === 'string' &&
    (v.attempt === null || v.attempt === undefined || isAttempt(v.attempt))
  )
}

function isOrderTokens(v: unknown): v is Record<string, string> {
  return isRecord(v) && Object.values(v).every((t) => typeof t === 'string')
}

/** Codes that mean this browser's cart can no longer be used. */
const GONE = new Set(['cart-not-found', 'unauthorized', 'forbidden', 'cart-checked-out'])

function storage(): Storage | undefined {
  return globalThis.localStorage
}

export const useCartStore = defineStore('cart', () => {
  const saved = readJson(storage(), CART_STORAGE_KEY, isSavedCart)
  const cartId = ref<string | null>(saved?.cartId ?? null)
  const token = ref<string | null>(saved?.token ?? null)
  const cart = ref<Cart | null>(null)
  let pendingAttempt: Attempt | null = saved?.attempt ?? null

  function persist() {
    writeJson(
      storage(),
      CART_STORAGE_KEY,
      cartId.value && token.value ? { cartId: cartId.value, token: token.value, attempt: pendingAttempt } : null,
    )
  }

  const attempts = new AttemptKeys({
    load: () => pendingAttempt,
    save: (a) => {
      pendingAttempt = a
      persist()
    },
  })

  const itemCount = computed(() => cart.value?.item_count ?? 0)
  const lines = computed(() => cart.value?.lines ?? [])

  function quantityOf(sku: string): number {
    return lines.value.find((l) => l.sku === sku)?.quantity ?? 0
  }

  /** Drops this browser's cart (the next edit opens a new one). */
  function forget() {
    cartId.value = null
    token.value = null
    cart.value = null
    pendingAttempt = null
    persist()
  }

  async function open(): Promise<{ id: string; token: string }> {
    if (cartId.value && token.value) return { id: cartId.value, token: token.value }
    const created = await unwrap(api.POST('/v1/carts'))
    cartId.value = created.cart_id
    token.value = created.token
    cart.value = created.cart
    pendingAttempt = null
    persist()
    return { id: created.cart_id, token: created.token }
  }

  /** Reloads the cart from the server; forgets it if the server no longer has it for us. */
  async function refresh(): Promise<Cart | null> {
    if (!cartId.value || !token.value) return null
    try {
      cart.value = await unwrap(
        api.GET('/v1/carts/{cart_id}', { params: { path: { cart_id: cartId.value } }, headers: bearer(token.value) }),
      )
      if (cart.value.status !== 'open') forget()
      return cart.value
    } catch (e) {
      if (e instanceof ApiProblem && GONE.has(e.code)) {
        forget()
        return null
      }
      throw e
    }
  }

  /**
   * Sets the quantity of `sku` (0 removes it), opening a cart first if needed;
   * `pass` is the waiting-room pass a product with a waiting room needs.
   */
  async function setQuantity(sku: string, quantity: number, pass?: string | null): Promise<Cart> {
    for (let tries = 0; ; tries++) {
      const c = await open()
      try {
        const updated = await unwrap(
          api.PUT('/v1/carts/{cart_id}/items/{sku}', {
            params: { path: { cart_id: c.id, sku }, header: pass ? { 'Waiting-Room-Pass': pass } : undefined },
            headers: bearer(c.token),
            body: { quantity },
          }),
        )
        cart.value = updated
        return updated
      } catch (e) {
        // A cart this browser remembers but the server no longer has: start a new one, once.
        if (tries === 0 && e instanceof ApiProblem && GONE.has(e.code)) {
          forget()
          continue
        }
        throw e
      }
    }
  }

  async function remove(sku: string): Promise<Cart> {
    const c = await open()
    const updated = await unwrap(
      api.DELETE('/v1/carts/{cart_id}/items/{sku}', { params: { path: { cart_id: c.id, sku } }, headers: bearer(c.token) }),
    )
    cart.value = updated
    return updated
  }

  /**
   * Checks out with one Idempotency-Key per attempt: the same body after a
   * retryable failure reuses the key. On success the order is remembered and the
   * cart forgotten (the next add opens a new one).
   */
  async function checkout(paymentToken: string, email: string): Promise<Order> {
    if (!cartId.value || !token.value) {
      throw new ApiProblem({ type: 'urn:flashcore:problem:cart-empty', title: 'Cart empty', status: 409, detail: '', code: 'cart-empty' }, null)
    }
    const id = cartId.value
    const secret = token.value
    const body: CheckoutBody = { payment: { token: paymentToken } }
    const trimmed = email.trim()
    if (trimmed) body.email = trimmed
    const key = attempts.keyFor(attemptFingerprint(id, body))
    try {
      const order = await unwrap(
        api.POST('/v1/carts/{cart_id}/checkout', {
          params: { path: { cart_id: id }, header: { 'Idempotency-Key': key } },
          headers: bearer(secret),
          body,
        }),
      )
      attempts.settle(null)
      rememberOrder(order.order_id, secret)
      forget()
      return order
    } catch (e) {
      attempts.settle(e instanceof ApiProblem ? e.code : 'network')
      throw e
    }
  }

  /** The Idempotency-Key a retry would reuse, if an attempt is pending. */
  function pendingKey(): string | null {
    return attempts.pending()?.key ?? null
  }

  function orderTokens(): Record<string, string> {
    return readJson(storage(), ORDERS_STORAGE_KEY, isOrderTokens) ?? {}
  }

  function rememberOrder(orderId: string, cartToken: string) {
    const all = orderTokens()
    all[orderId] = cartToken
    writeJson(storage(), ORDERS_STORAGE_KEY, all)
  }

  /** The token that may read `orderId`, if it was placed from this browser. */
  function tokenForOrder(orderId: string): string | null {
    return orderTokens()[orderId] ?? null
  }

  return { cartId, token, cart, itemCount, lines, quantityOf, open, refresh, setQuantity, remove, checkout, pendingKey, forget, tokenForOrder }
})
