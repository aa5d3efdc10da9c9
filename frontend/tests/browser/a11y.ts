/**
 * What the accessibility tests look at, in the browser itself: where the keyboard
 * focus is, the accessible name Chromium computes for every control (its own
 * accessibility tree, through the DevTools protocol), and whether a page is wider
 * than the phone's viewport.
 */
import type { Locator, Page } from 'playwright-core'

/** Every element a buyer can operate. */
const CONTROLS = 'a[href], button, input, select, textarea, summary, [role=button], [role=link], [tabindex]:not([tabindex="-1"])'

/** The roles that are operated, so must be named, wherever they show up in the tree. */
const INTERACTIVE_ROLES = new Set([
  'button',
  'link',
  'textbox',
  'searchbox',
  'combobox',
  'listbox',
  'spinbutton',
  'slider',
  'radio',
  'checkbox',
  'switch',
  'tab',
  'menuitem',
  'option',
])

/** A short description of the focused element, for failure messages. */
export async function describeFocus(page: Page): Promise<string> {
  return page.evaluate(() => {
    const el = document.activeElement
    if (!el || el === document.body) return '<body> (nothing focused)'
    return el.outerHTML.slice(0, 160)
  })
}

/** Whether `target` has the keyboard focus. */
export async function isFocused(target: Locator): Promise<boolean> {
  return target.evaluate((el) => el === document.activeElement)
}

/**
 * Presses `key` (Tab by default) until `target` has the focus, failing after `max`
 * presses; returns how many it took. Only the keyboard moves the focus.
 */
export async function pressUntilFocused(page: Page, target: Locator, opts: { key?: string; max?: number } = {}): Promise<number> {
  const key = opts.key ?? 'Tab'
  const max = opts.max ?? 40
  await target.waitFor()
  for (let i = 1; i <= max; i++) {
    await page.keyboard.press(key)
    if (await isFocused(target)) return i
  }
  throw new Error(`not reached with ${max} × ${key}: ${target.toString()}; the focus is on ${await describeFocus(page)}`)
}

/** The focus ring the focused element shows (its computed outline), or null when it shows none. */
export async function focusRing(page: Page): Promise<string | null> {
  return page.evaluate(() => {
    const el = document.activeElement
    if (!el || el === document.body) return null
    const s = getComputedStyle(el)
    const width = parseFloat(s.outlineWidth)
    if (s.outlineStyle === 'none' || !(width > 0)) return s.boxShadow && s.boxShadow !== 'none' ? s.boxShadow : null
    return `${s.outlineWidth} ${s.outlineStyle} ${s.outlineColor}`
  })
}

export interface NamedControl {
  /** Chromium's computed role. */
  role: string
  /** Chromium's computed accessible name (trimmed). */
  name: string
  /** The start of the element's HTML, to say which one it is. */
  html: string
}

/**
 * Every rendered control on the page (links, buttons, inputs, selects, …) with the
 * role and accessible name Chromium's accessibility tree gives it, plus any other
 * node of an operable role that the tree holds (a `div` made into a button, say).
 */
export async function controlNames(page: Page): Promise<{ controls: NamedControl[]; otherUnnamed: string[] }> {
  const cdp = await page.context().newCDPSession(page)
  try {
    await cdp.send('DOM.enable')
    await cdp.send('Accessibility.enable')
    const { result } = await cdp.send('Runtime.evaluate', {
      expression: `Array.from(document.querySelectorAll(${JSON.stringify(CONTROLS)})).filter((e) => e.checkVisibility())`,
    })
    if (!result.objectId) throw new Error('no element list')
    const { result: props } = await cdp.send('Runtime.getProperties', { objectId: result.objectId, ownProperties: true })
    const controls: NamedControl[] = []
    const seen = new Set<number>()
    for (const p of props) {
      const objectId = p.value?.objectId
      if (!/^\d+$/.test(p.name) || !objectId) continue
      const { nodes } = await cdp.send('Accessibility.getPartialAXTree', { objectId, fetchRelatives: false })
      const node = nodes.find((n) => n.backendDOMNodeId !== undefined) ?? nodes[0]
      const html = await cdp.send('Runtime.callFunctionOn', {
        objectId,
        functionDeclaration: 'function () { return this.outerHTML.slice(0, 160) }',
        returnByValue: true,
      })
      if (node?.backendDOMNodeId !== undefined) seen.add(node.backendDOMNodeId)
      controls.push({
        role: String(node?.role?.value ?? ''),
        name: String(node?.name?.value ?? '').trim(),
        html: String(html.result.value),
      })
    }
    const { nodes } = await cdp.send('Accessibility.getFullAXTree')
    const otherUnnamed = nodes
      .filter((n) => !n.ignored && INTERACTIVE_ROLES.has(String(n.role?.value)) && !String(n.name?.value ?? '').trim())
      .filter((n) => n.backendDOMNodeId === undefined || !seen.has(n.backendDOMNodeId))
      .map((n) => `${String(n.role?.value)} (backend node ${n.backendDOMNodeId})`)
    return { controls, otherUnnamed }
  } finally {
    await cdp.detach()
  }
}

/** How wide the page is against the viewport (no horizontal scrolling when scrollWidth <= innerWidth). */
export async function widths(page: Page): Promise<{ scrollWidth: number; innerWidth: number; widest: string }> {
  return page.evaluate(() => {
    // The element sticking out furthest on the right, to say what overflows.
    let widest = ''
    let right = window.innerWidth
    for (const el of Array.from(document.body.querySelectorAll('*'))) {
      const r = el.getBoundingClientRect().right
      if (r > right + 0.5) {
        right = r
        widest = `${el.outerHTML.slice(0, 120)} (right edge ${r.toFixed(0)})`
      }
    }
    return { scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, widest }
  })
}
