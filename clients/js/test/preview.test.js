// The client against a real orchestrator (test/server.js): the whole flow, a dropped socket with edits
// made while offline, a page-reload-style reconnect, and a quota refusal.
import assert from 'node:assert/strict'
import { createHash, randomUUID } from 'node:crypto'
import { after, before, test } from 'node:test'
import WebSocket from 'ws'
import { AgentError, ApiError, createClient } from '../src/index.js'
import { startServer } from './server.js'

let server
const tokens = {}
const USERS = { alice: randomUUID(), bob: randomUUID(), carol: randomUUID(), dave: randomUUID() }
const open = new Set()

// A WebSocket transport that remembers its sockets, so a test can cut them as a network would.
const sockets = new Set()
class TrackedWebSocket extends WebSocket {
  constructor(...args) {
    super(...args)
    sockets.add(this)
    this.on('close', () => sockets.delete(this))
  }
}

const TUNING = { manifestTimeoutMs: 1500, pollIntervalMs: 300, reconnectDelaysMs: [100, 300, 1000] }

function client(user, extra = {}) {
  return createClient({ apiUrl: server.url, accessToken: () => tokens[user], transport: TrackedWebSocket, ...TUNING, ...extra })
}

async function track(preview) {
  open.add(preview)
  return preview
}

async function get(url) {
  const response = await fetch(url, { cache: 'no-store' })
  return { status: response.status, body: await response.text() }
}

const sha = (text) => createHash('sha256').update(text).digest('hex')

function until(preview, state) {
  return new Promise((resolve) => {
    if (preview.connection === state) return resolve()
    const off = preview.onConnection((now) => {
      if (now === state) {
        off()
        resolve()
      }
    })
  })
}

before(async () => {
  server = await startServer()
  const names = [...Object.keys(USERS), 'service']
  const minted = await server.tokens([...Object.values(USERS).map((sub) => [sub]), [randomUUID(), 'service_role']])
  names.forEach((name, i) => (tokens[name] = minted[i]))
})

after(async () => {
  for (const preview of open) preview.close()
  await server?.stop()
})

test('create, write with acks, the preview serves it, refusals are typed, end', async () => {
  const statuses = []
  const velocity = client('alice')
  const preview = await track(await velocity.createPreview(`js-flow-${randomUUID()}`))
  preview.onStatus((s) => statuses.push(s.status))
  assert.equal(preview.session.status, 'active')
  assert.match(preview.previewUrl, /^http:\/\/127\.0\.0\.1:\d+\/$/)

  const html = '<h1>hello from the js client</h1>'
  const ack = await preview.writeFile('index.html', html)
  assert.equal(ack.path, 'index.html')
  assert.equal(ack.sha256, sha(html))
  assert.equal((await get(preview.previewUrl)).body, html)

  const bytes = new Uint8Array([0, 1, 2, 250, 255])
  const [binary, text] = await preview.writeFiles([
    { path: 'assets/blob.bin', content: bytes },
    { path: 'src/app.js', content: 'export const answer = 42\n' },
  ])
  assert.equal(binary.sha256, createHash('sha256').update(bytes).digest('hex'))
  assert.equal(text.path, 'src/app.js')
  assert.deepEqual(new Uint8Array(await (await fetch(`${preview.previewUrl}assets/blob.bin`)).arrayBuffer()), bytes)

  const removed = await preview.deleteFile('src/app.js')
  assert.equal(removed.sha256, null)
  assert.equal((await get(`${preview.previewUrl}src/app.js`)).status, 404)

  await assert.rejects(preview.writeFile('../escape.txt', 'x'), (error) => {
    assert.ok(error instanceof AgentError)
    assert.equal(error.code, 'parent_segment')
    return true
  })

  // Many files at once travel as files:snapshot batches and are acknowledged per file.
  const many = Array.from({ length: 30 }, (_, i) => ({ path: `pages/p${i}.html`, content: `<p>${i}</p>` }))
  const acks = await preview.writeFiles(many)
  assert.equal(acks.length, 30)
  assert.ok(preview.stats().snapshotsSent >= 1)
  assert.equal((await get(`${preview.previewUrl}pages/p29.html`)).body, '<p>29</p>')

  const ended = await preview.end()
  assert.equal(ended.status, 'ended')
  assert.equal(ended.end_reason, 'user')
  await assert.rejects(preview.writeFile('late.txt', 'x'), { code: 'client.closed' })
  assert.equal((await velocity.getSession(preview.session.id)).status, 'ended')
})

test('a dropped socket: edits made offline are queued, sent after the rejoin, acked and served', async () => {
  const projectId = `js-drop-${randomUUID()}`
  const preview = await track(await client('bob').createPreview(projectId))
  await preview.writeFile('a.txt', 'before the drop')
  await until(preview, 'online')
  const joinsBefore = preview.stats().joins

  for (const socket of sockets) socket.terminate() // as if the network went away
  await until(preview, 'offline')
  const offline = [preview.writeFile('offline.txt', 'written while offline'), preview.writeFile('a.txt', 'changed while offline'), preview.deleteFile('gone.txt')]
  assert.equal(preview.stats().pending, 3)

  await until(preview, 'online')
  const [first, second, deleted] = await Promise.all(offline)
  assert.equal(first.sha256, sha('written while offline'))
  assert.equal(second.sha256, sha('changed while offline'))
  assert.equal(deleted.sha256, null)
  assert.ok(preview.stats().joins > joinsBefore)
  assert.equal((await get(`${preview.previewUrl}offline.txt`)).body, 'written while offline')
  assert.equal((await get(`${preview.previewUrl}a.txt`)).body, 'changed while offline')
  preview.close() // the page goes away; the session stays for the next test
  reload.projectId = projectId
  reload.previewUrl = preview.previewUrl
})

const reload = {}

test('a page reload: a new client for the same project resends only what the agent lacks', async () => {
  assert.ok(reload.projectId, 'needs the previous test')
  const preview = await track(await client('bob').createPreview(reload.projectId))
  assert.equal(preview.previewUrl, reload.previewUrl) // the same live session
  const acks = await preview.writeFiles([
    { path: 'a.txt', content: 'changed while offline' }, // the agent has it
    { path: 'offline.txt', content: 'written while offline' }, // the agent has it
    { path: 'a.txt', content: 'changed after the reload' },
    { path: 'new.txt', content: 'new after the reload' },
  ])
  assert.equal(acks.length, 4)
  const stats = preview.stats()
  // The agent answered files:manifest_request: only the two files it lacks were sent.
  assert.ok(stats.manifests > 0, JSON.stringify(stats))
  assert.equal(stats.manifestTimeouts, 0, JSON.stringify(stats))
  assert.equal(stats.updatesSent, 2, JSON.stringify(stats))
  assert.equal(stats.skippedUpToDate, 1, JSON.stringify(stats))
  assert.equal((await get(`${preview.previewUrl}a.txt`)).body, 'changed after the reload')
  assert.equal((await get(`${preview.previewUrl}new.txt`)).body, 'new after the reload')
  assert.equal((await preview.end()).status, 'ended')
})

test('keep my preview: extend within the quota\'s session length, a typed refusal past it', async () => {
  const response = await fetch(`${server.url}/api/v1/quotas/${USERS.dave}/`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${tokens.service}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ max_session_seconds: 3 * 3600 }),
  })
  assert.ok([200, 201].includes(response.status), await response.text())
  const preview = await track(await client('dave').createPreview(`js-extend-${randomUUID()}`))
  const before = Date.parse(preview.session.expires_at)
  const extended = await preview.extend(30)
  assert.equal(Date.parse(extended.expires_at) - before, 30 * 60 * 1000)
  assert.equal(preview.session.expires_at, extended.expires_at)
  await assert.rejects(preview.extend(60), (error) => {
    assert.ok(error instanceof ApiError)
    assert.equal(error.status, 409)
    assert.equal(error.code, 'quota.session_length')
    assert.equal(Date.parse(error.details.max_expires_at), Date.parse(preview.session.created_at) + 3 * 3600 * 1000)
    return true
  })
  assert.equal((await preview.end()).status, 'ended')
})

test('a quota refusal is an ApiError with the code and its reasons', async () => {
  const response = await fetch(`${server.url}/api/v1/quotas/${USERS.carol}/`, {
    method: 'PUT',
    headers: { Authorization: `Bearer ${tokens.service}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ max_concurrent_sessions: 0 }),
  })
  assert.ok([200, 201].includes(response.status), await response.text())
  await assert.rejects(client('carol').createPreview(`js-quota-${randomUUID()}`), (error) => {
    assert.ok(error instanceof ApiError)
    assert.equal(error.status, 429)
    assert.equal(error.code, 'quota.concurrent_sessions')
    assert.equal(error.reasons[0].code, 'quota.concurrent_sessions')
    assert.equal(error.details.reasons[0].limit, 0)
    return true
  })
})
