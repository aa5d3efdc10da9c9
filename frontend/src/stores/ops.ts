/**
 * The operator's session: the API key (sessionStorage only, gone with the tab)
 * and its role. The server tells the role by what it allows: `GET /v1/admin/keys`
 * answers admins and refuses operators with 403. The console hides admin-only
 * controls for operators; the server refuses them regardless.
 */
import { defineStore } from 'pinia'
import { computed, ref } from 'vue'
import { api, bearer, unwrap } from '@/api/client'
import { ApiProblem } from '@/api/problem'
import { readJson, writeJson, isRecord } from '@/lib/storage'

export type Role = 'admin' | 'operator'

export const OPS_STORAGE_KEY = 'flashcore.ops.v1'

interface SavedSession {
  key: string
  role: Role
}

function isSession(v: unknown): v is SavedSession {
  return isRecord(v) && typeof v.key === 'string' && (v.role === 'admin' || v.role === 'operator')
}

function storage(): Storage | undefined {
  return globalThis.sessionStorage
}

/** Finds the role of `key`: 401 → not a key; keys list 200 → admin, 403 → operator. */
export async function probeRole(key: string): Promise<Role> {
  await unwrap(api.GET('/v1/admin/journal', { headers: bearer(key) }))
  try {
    await unwrap(api.GET('/v1/admin/keys', { headers: bearer(key) }))
    return 'admin'
  } catch (e) {
    if (e instanceof ApiProblem && e.status === 403) return 'operator'
    throw e
  }
}

export const useOpsStore = defineStore('ops', () => {
  const saved = readJson(storage(), OPS_STORAGE_KEY, isSession)
  const key = ref<string | null>(saved?.key ?? null)
  const role = ref<Role | null>(saved?.role ?? null)

  const signedIn = computed(() => key.value !== null && role.value !== null)
  const isAdmin = computed(() => role.value === 'admin')

  async function signIn(secret: string): Promise<Role> {
    const trimmed = secret.trim()
    const found = await probeRole(trimmed)
    key.value = trimmed
    role.value = found
    writeJson(storage(), OPS_STORAGE_KEY, { key: trimmed, role: found })
    return found
  }

  function signOut() {
    key.value = null
    role.value = null
    writeJson(storage(), OPS_STORAGE_KEY, null)
  }

  /** Headers for an operator call; throws when signed out. */
  function auth(): { Authorization: string } {
    if (!key.value) throw new ApiProblem({ type: 'urn:flashcore:problem:unauthorized', title: 'Signed out', status: 401, detail: 'Sign in again.', code: 'unauthorized' }, null)
    return bearer(key.value)
  }

  /** A 401 means the key was revoked (or the server restarted without it): back to sign-in. */
  function handle(e: unknown): never {
    if (e instanceof ApiProblem && e.status === 401) signOut()
    throw e
  }

  return { key, role, signedIn, isAdmin, signIn, signOut, auth, handle }
})
