// The per-file stack hooks, apart from harness.ts: the global setup imports the
// harness outside any test file, where Vitest's hooks cannot be loaded.
import { afterAll, afterEach, beforeAll, expect } from 'vitest'
import { startStack, type Stack } from './harness'

/**
 * One stack for a test file: started before its tests (with `env` for the
 * binary), stopped after them, and each test checked to leave no uncaught page
 * error and no refusal by the page CSP the binary serves. Call it at the top of
 * the file; the function it returns gives the running stack.
 */
export function useStack(env: Record<string, string> = {}): () => Stack {
  let stack: Stack | undefined
  beforeAll(async () => {
    stack = await startStack(env)
  })
  afterEach(() => {
    expect(stack?.pageErrors()).toEqual([])
  })
  afterAll(async () => {
    await stack?.stop()
  })
  return () => {
    if (!stack) throw new Error('the stack is not started yet (use it inside a test or hook)')
    return stack
  }
}
