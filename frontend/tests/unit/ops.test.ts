import { createPinia, setActivePinia } from 'pinia'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { OPS_STORAGE_KEY, useOpsStore } from '@/stores/ops'
import { fakeServer, json, problem } from './fakeServer'

beforeEach(() => {
  sessionStorage.clear()
  localStorage.clear()
  setActivePinia(createPinia())
})
afterEach(() => vi.unstubAllGlobals())

function server(keys: Record<string, 'admin' | 'operator'>) {
  return fakeServer((r) => {
    const key = r.headers.get('authorization')?.replace('Bearer ', '') ?? ''
    const role = keys[key]
    if (!role) return problem(401, 'unauthorized')
    if (r.path === '/v1/admin/keys') return role === 'admin' ? json(200, []) : problem(403, 'forbidden')
    return json(200, { journal: {}, write_behind: {} })
  })
}

describe('operator session', () => {
  it('finds the admin role from the keys list answering 200', async () => {
    server({ fck_admin: 'admin' })
    const ops = useOpsStore()
    expect(await ops.signIn(' fck_admin ')).toBe('admin')
    expect(ops.isAdmin).toBe(true)
  })

  it('finds the operator role from the keys list answering 403', async () => {
    server({ fck_op: 'operator' })
    const ops = useOpsStore()
    expect(await ops.signIn('fck_op')).toBe('operator')
    expect(ops.isAdmin).toBe(false)
  })

  it('refuses an unknown key and keeps nothing', async () => {
    server({})
    const ops = useOpsStore()
    await expect(ops.signIn('fck_nope')).rejects.toMatchObject({ status: 401 })
    expect(ops.signedIn).toBe(false)
    expect(sessionStorage.getItem(OPS_STORAGE_KEY)).toBeNull()
  })

  it('keeps the key in sessionStorage only, and forgets it on sign-out', async () => {
    server({ fck_admin: 'admin' })
    const ops = useOpsStore()
    await ops.signIn('fck_admin')
    expect(localStorage.length).toBe(0)
    setActivePinia(createPinia())
    const again = useOpsStore()
    expect(again.signedIn).toBe(true)
    expect(again.auth()).toEqual({ Authorization: 'Bearer fck_admin' })
    again.signOut()
    expect(sessionStorage.getItem(OPS_STORAGE_KEY)).toBeNull()
    expect(() => again.auth()).toThrow()
  })
})
