/** Runs an operator call, signing out on 401 and keeping the last failure as words. */
import { ref, type Ref } from 'vue'
import { ApiProblem } from '@/api/problem'
import { useOpsStore } from '@/stores/ops'

export interface OpsCall {
  error: Ref<string | null>
  busy: Ref<boolean>
  run<T>(call: () => Promise<T>): Promise<T | undefined>
}

/** The words for an operator-side problem. */
export function opsMessage(e: ApiProblem): string {
  if (e.status === 403) return 'Your key’s role may not do this (admin only). The server refused it.'
  const extra = e.retryAfterSecs !== null ? ` Retry in ${e.retryAfterSecs} s.` : ''
  return `${e.problem.title}${e.problem.detail ? `: ${e.problem.detail}` : ''} (${e.code}).${extra}`
}

export function useOpsCall(): OpsCall {
  const ops = useOpsStore()
  const error = ref<string | null>(null)
  const busy = ref(false)
  async function run<T>(call: () => Promise<T>): Promise<T | undefined> {
    busy.value = true
    error.value = null
    try {
      return await call()
    } catch (e) {
      if (!(e instanceof ApiProblem)) throw e
      if (e.status === 401) ops.signOut()
      error.value = opsMessage(e)
      return undefined
    } finally {
      busy.value = false
    }
  }
  return { error, busy, run }
}
