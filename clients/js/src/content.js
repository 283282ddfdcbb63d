// File contents: the wire form (utf8 text or base64) and the SHA-256 the agent reports, with WebCrypto
// (browsers, Node 20+), so the same module runs in both without a bundler.

const encoder = new TextEncoder()

function bytesToBase64(bytes) {
  let binary = ''
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000))
  }
  return btoa(binary)
}

function base64ToBytes(text) {
  const binary = atob(text)
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

/**
 * `content` as sent in `file:update`: a string with `encoding` "utf8" (default) or "base64" (already
 * base64), or bytes (Uint8Array, ArrayBuffer, any typed array view), sent as base64.
 * Returns `{ content, encoding, bytes }` where `bytes` is what the agent will write.
 */
export function toWire(content, encoding) {
  if (typeof content === 'string') {
    if (encoding === 'base64') {
      let bytes
      try {
        bytes = base64ToBytes(content)
      } catch {
        throw new TypeError('content is not valid base64')
      }
      return { content, encoding: 'base64', bytes }
    }
    if (encoding !== undefined && encoding !== 'utf8' && encoding !== 'utf-8') {
      throw new TypeError(`unknown encoding ${JSON.stringify(encoding)}: use "utf8" or "base64"`)
    }
    return { content, encoding: 'utf8', bytes: encoder.encode(content) }
  }
  let bytes
  if (content instanceof ArrayBuffer) bytes = new Uint8Array(content)
  else if (ArrayBuffer.isView(content)) bytes = new Uint8Array(content.buffer, content.byteOffset, content.byteLength)
  else throw new TypeError('content must be a string, an ArrayBuffer or a typed array')
  return { content: bytesToBase64(bytes), encoding: 'base64', bytes }
}

export async function sha256Hex(bytes) {
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', bytes))
  let hex = ''
  for (const byte of digest) hex += byte.toString(16).padStart(2, '0')
  return hex
}

/** The wire size of a `file:update` payload, roughly (for batching snapshots under the payload limit). */
export function wireSize(path, content) {
  return path.length + content.length + 96
}
