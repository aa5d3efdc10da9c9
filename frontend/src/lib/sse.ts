/**
 * A minimal Server-Sent Events reader for streams that need an `Authorization`
 * header (EventSource cannot send one): feed it text as it arrives, get whole
 * events back.
 */
export interface SseEvent {
  event: string
  data: string
}

export class SseParser {
  private buffer = ''

  /** Adds `chunk`; returns the events it completed (comments and keep-alives dropped). */
  push(chunk: string): SseEvent[] {
    this.buffer += chunk.replace(/\r\n?/g, '\n')
    const out: SseEvent[] = []
    let end: number
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, end)
      this.buffer = this.buffer.slice(end + 2)
      let event = 'message'
      const data: string[] = []
      for (const line of block.split('\n')) {
        if (line.startsWith(':') || line === '') continue
        const colon = line.indexOf(':')
        const field = colon < 0 ? line : line.slice(0, colon)
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
        if (field === 'event') event = value
        else if (field === 'data') data.push(value)
      }
      if (data.length) out.push({ event, data: data.join('\n') })
    }
    return out
  }
}
