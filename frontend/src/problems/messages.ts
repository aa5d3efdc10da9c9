/**
 * Every problem code as words a buyer understands, and what they can do about it.
 * Pure: the views decide how to show it, the tests pin the wording.
 */
import { formatInstant } from '@/lib/format'
import type { ApiProblem, Problem } from '@/api/problem'

/** What the buyer can do next. */
export type Remedy =
  /** Wait `retryAfterSecs` (if known) and send the same request again. */
  | 'retry'
  /** Change the cart (quantity, remove a line) and try again. */
  | 'update-cart'
  /** Use another payment method. */
  | 'change-payment'
  /** Start a new cart (this one is gone or no longer ours). */
  | 'new-cart'
  /** Nothing to do here but read it. */
  | 'none'

export interface BuyerMessage {
  /** One short sentence. */
  headline: string
  /** What it means and what to do. */
  detail: string
  remedy: Remedy
  /** Seconds to wait before retrying, if the server said (or a sensible default for retryable codes). */
  retryAfterSecs: number | null
  /** The problem code, for tests and support. */
  code: string
}

/** Codes where the same request may succeed later. */
const RETRYABLE = new Set([
  'rate-limited',
  'overloaded',
  'unavailable',
  'timeout',
  'idempotency-unavailable',
  'idempotency-key-in-use',
  'not-ready',
  'standby',
  'payment-provider-error',
  'network',
  'internal',
])

function units(n: number): string {
  return n === 1 ? '1 unit' : `${n} units`
}

/** The message for `problem` (with the response's `Retry-After`, if any). */
export function describeProblem(problem: Problem, retryAfterSecs: number | null = null, locale?: string): BuyerMessage {
  const base = { code: problem.code, retryAfterSecs: null as number | null }
  const retry = (headline: string, detail: string, fallbackSecs: number): BuyerMessage => ({
    ...base,
    headline,
    detail,
    remedy: 'retry',
    retryAfterSecs: retryAfterSecs ?? fallbackSecs,
  })
  switch (problem.code) {
    case 'out-of-stock': {
      const left = problem.available
      if (left === undefined) {
        return { ...base, headline: 'Not enough stock', detail: 'There are not that many left. Choose fewer.', remedy: 'update-cart' }
      }
      if (left === 0) {
        return { ...base, headline: 'Sold out', detail: 'None are left right now. Stock returns if other buyers’ holds lapse.', remedy: 'update-cart' }
      }
      return { ...base, headline: `Only ${units(left)} left`, detail: `Choose ${left} or fewer to add them to your cart.`, remedy: 'update-cart' }
    }
    case 'limit-exceeded': {
      const max = problem.max_per_order
      return {
        ...base,
        headline: max === undefined ? 'Over the limit per order' : `At most ${max} per order`,
        detail: 'This item is limited per order so that more buyers get one. Lower the quantity.',
        remedy: 'update-cart',
      }
    }
    case 'sale-not-started': {
      const when = problem.sale_starts_at ? formatInstant(problem.sale_starts_at, locale) : 'soon'
      return { ...base, headline: 'The sale has not started yet', detail: `It starts ${problem.sale_starts_at ? `at ${when}` : when}. You can add it to your cart then.`, remedy: 'none' }
    }
    case 'stock-lost':
      return {
        ...base,
        headline: 'Your reservation ran out and the stock is gone',
        detail: `The hold on ${problem.sku ?? 'an item'} lapsed and other buyers took the last units. Nothing was charged. Update your cart and check out again.`,
        remedy: 'update-cart',
      }
    case 'payment-declined':
      return { ...base, headline: 'Your payment was declined', detail: 'Nothing was charged and your cart is kept. Try another card.', remedy: 'change-payment' }
    case 'invalid-payment-token':
      return { ...base, headline: 'That payment method is not recognised', detail: 'Choose one of the test cards listed and try again.', remedy: 'change-payment' }
    case 'invalid-email':
      return { ...base, headline: 'That email address does not look right', detail: 'Check it, or leave it empty.', remedy: 'change-payment' }
    case 'payment-provider-error':
      return retry('The payment service failed', 'Nothing was charged. Try again: retrying this payment cannot charge you twice.', 2)
    case 'cart-empty':
      return { ...base, headline: 'Your cart is empty', detail: 'Add something before checking out.', remedy: 'update-cart' }
    case 'cart-checked-out':
      return { ...base, headline: 'This cart was already checked out', detail: 'Your order is placed. Start a new cart to buy more.', remedy: 'new-cart' }
    case 'cart-not-found':
    case 'unauthorized':
    case 'forbidden':
      return { ...base, headline: 'Your cart has expired', detail: 'This browser’s cart can no longer be used. A new one will be started.', remedy: 'new-cart' }
    case 'product-not-found':
      return { ...base, headline: 'This product does not exist', detail: 'It may have been removed from the catalog.', remedy: 'none' }
    case 'order-not-found':
      return { ...base, headline: 'Order not found', detail: 'Orders can be seen from the browser that placed them.', remedy: 'none' }
    case 'invalid-quantity':
      return { ...base, headline: 'That quantity is not possible', detail: `Choose between 0 and ${problem.max ?? 1000}.`, remedy: 'update-cart' }
    case 'rate-limited':
      return retry('Too many requests', 'You are going faster than the shop allows. Wait a moment.', 1)
    case 'overloaded':
      return retry('The shop is very busy', 'Many buyers want this item right now. Nothing was changed; wait a moment and retry.', 1)
    case 'unavailable':
    case 'timeout':
    case 'idempotency-unavailable':
      return retry('The shop cannot take this right now', 'Nothing was changed and nothing was charged. Wait a moment and retry.', 2)
    case 'idempotency-key-in-use':
      return retry('Your previous attempt is still being processed', 'Wait a moment; retrying shows its outcome and cannot charge twice.', 1)
    case 'not-ready':
    case 'standby':
      return retry('The shop is starting up', 'It will be ready in a moment. Nothing was changed.', 1)
    case 'network':
      return retry('No connection to the shop', 'Check your connection. Retrying is safe: an order is never placed twice.', 2)
    case 'internal':
      return retry('Something went wrong on our side', 'It has been logged. Nothing was charged. Try again.', 2)
    default:
      return {
        ...base,
        headline: problem.title || 'Something went wrong',
        detail: problem.detail || 'Try again later.',
        remedy: RETRYABLE.has(problem.code) ? 'retry' : 'none',
        retryAfterSecs: retryAfterSecs,
      }
  }
}

/** [`describeProblem`] for a thrown [`ApiProblem`]. */
export function describeApiProblem(e: ApiProblem, locale?: string): BuyerMessage {
  return describeProblem(e.problem, e.retryAfterSecs, locale)
}

/** Whether the same request may succeed if sent again (with the same Idempotency-Key). */
export function isRetryable(code: string): boolean {
  return RETRYABLE.has(code)
}
