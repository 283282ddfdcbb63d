// The resync rule without a server (the agent on main does not answer files:manifest_request yet):
// a manifest is compared by sha256 and version, and only what the agent lacks is sent.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { Preview, createClient } from '../src/index.js'

const sha = (text) => createHash('sha256').update(text).digest('hex')

function offlinePreview() {
  const client = createClient({ apiUrl: 'http://127.0.0.1:9', accessToken: 't', manifestTimeoutMs: 60000 })
  const preview = new Preview(client, { id: 's1', project_id: 'p', status: 'active', preview_url: 'http://x/' })
  const sent = []
  preview._send = (event, payload) => (sent.push({ event, payload }), true)
  return { preview, sent }
}

test('after a manifest only missing, older or different files are sent, and deletes replayed', async () => {
  const { preview, sent } = offlinePreview()
  const same = preview.writeFile('same.txt', 'unchanged')
  const changed = preview.writeFile('changed.txt', 'new text')
  const missing = preview.writeFile('missing.txt', 'not there')
  const gone = preview.deleteFile('gone.txt')
  const alreadyGone = preview.deleteFile('already-gone.txt')
  preview._joined() // as on SUBSCRIBED: asks for the manifest and holds edits until it comes
  assert.deepEqual(sent.map((m) => m.event), ['files:manifest_request'])
  const requestId = sent[0].payload.request_id
  preview._onEvent('agent:manifest', { reason: 'request', request_id: requestId, part: 1, parts: 2, files: { 'same.txt': { sha256: sha('unchanged'), version: 3 }, 'changed.txt': { sha256: sha('old text'), version: 2 } } })
  preview._onEvent('agent:manifest', { reason: 'request', request_id: requestId, part: 2, parts: 2, files: { 'gone.txt': { sha256: sha('x'), version: 1 }, 'already-gone.txt': { sha256: null, version: 5 } } })
  assert.equal((await same).source, 'manifest')
  assert.equal((await alreadyGone).source, 'manifest')
  await new Promise((r) => setTimeout(r, 20))
  const sentPaths = sent.slice(1).map((m) => `${m.event} ${m.payload.path}`).sort()
  assert.deepEqual(sentPaths, ['file:delete gone.txt', 'file:update changed.txt', 'file:update missing.txt'])
  for (const { payload } of sent.slice(1)) preview._onEvent('file:synced', { path: payload.path, version: payload.version, sha256: payload.content ? sha(payload.content) : null })
  assert.equal((await changed).sha256, sha('new text'))
  assert.equal((await missing).sha256, sha('not there'))
  assert.equal((await gone).sha256, null)
  assert.equal(preview.stats().skippedUpToDate, 2)
  preview.close()
})

test('an agent:error rejects only the matching path and version; a later ack resolves earlier versions', async () => {
  const { preview, sent } = offlinePreview()
  preview._joined()
  preview._applyManifest({})
  const first = preview.writeFile('a.txt', 'one')
  const second = preview.writeFile('a.txt', 'two')
  const bad = preview.writeFile('../x', 'y')
  await new Promise((r) => setTimeout(r, 20))
  const update = (path) => sent.find((m) => m.event === 'file:update' && m.payload.path === path).payload
  preview._onEvent('agent:error', { event: 'file:update', code: 'parent_segment', message: 'no', path: '../x', version: update('../x').version })
  await assert.rejects(bad, { name: 'AgentError', code: 'parent_segment' })
  preview._onEvent('file:synced', { path: 'a.txt', version: update('a.txt').version, sha256: sha('two'), latency_ms: 1 })
  assert.equal((await first).superseded, true)
  assert.equal((await second).sha256, sha('two'))
  preview.close()
})
