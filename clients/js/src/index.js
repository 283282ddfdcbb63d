// @velocity/preview-client: create a live preview, keep the editor's files flowing into it with
// acknowledgements, and survive disconnects (the protocol: docs/realtime.md and docs/agent.md).
import { RealtimeClient } from '@supabase/supabase-js'
import { ApiError, AgentError, PreviewError, VelocityError } from './errors.js'
import { sha256Hex, toWire, wireSize } from './content.js'

export { ApiError, AgentError, PreviewError, VelocityError }

const DEFAULTS = {
  pollIntervalMs: 1000, // status poll while the session is creating (or the channel is down)
  activePollIntervalMs: 10000, // status poll once active and joined (covers missed session:status)
  heartbeatIntervalMs: 60000, // POST /heartbeat/ so an open editor is not reaped as idle
  manifestTimeoutMs: 3000, // after a join: without a manifest by then, resend everything unacked
  ackTimeoutMs: 15000, // an edit sent and not acked by then triggers a resync
  maxEventsPerSecond: 10, // broadcasts this client sends: each counts once sent and once per listener against a
  // Supabase project's 100 events a second (its agent's acks are merged and paced too: docs/agent.md)
  snapshotThreshold: 8, // more pending updates than this go as files:snapshot batches
  snapshotMaxFiles: 500,
  snapshotMaxBytes: 1_000_000,
  reconnectDelaysMs: [250, 500, 1000, 2000, 5000, 10000],
  createTimeoutMs: 120000,
}
const LIVE = new Set(['creating', 'active'])

/** @param {import('./index.js').ClientOptions} options */
export function createClient(options) {
  return new VelocityClient(options)
}

export class VelocityClient {
  constructor(options = {}) {
    const { apiUrl, realtimeUrl, supabaseUrl, supabaseKey, accessToken, transport, fetch: fetchImpl, logger } = options
    if (!apiUrl) throw new TypeError('apiUrl is required (the orchestrator, e.g. http://127.0.0.1:8000)')
    if (!accessToken) throw new TypeError('accessToken is required (a string or a function returning one)')
    this.apiUrl = String(apiUrl).replace(/\/+$/, '').replace(/\/api\/v1$/, '')
    const realtimeBase = realtimeUrl ?? (supabaseUrl ? `${String(supabaseUrl).replace(/\/+$/, '')}/realtime/v1` : `${this.apiUrl}/realtime/v1`)
    this.realtimeUrl = String(realtimeBase).replace(/^http/, 'ws').replace(/\/+$/, '').replace(/\/websocket$/, '')
    this.supabaseKey = supabaseKey ?? null
    this.transport = transport
    this.logger = logger ?? null
    this.options = { ...DEFAULTS, ...options }
    this._accessToken = accessToken
    this._fetch = fetchImpl ?? ((...args) => globalThis.fetch(...args))
  }

  async token() {
    const value = typeof this._accessToken === 'function' ? await this._accessToken() : this._accessToken
    if (!value) throw new VelocityError('auth.no_token', 'accessToken gave no token')
    return String(value)
  }

  /** One REST call; answers the parsed JSON body or throws ApiError (network failures: code `network_error`). */
  async request(method, path, { body, signal } = {}) {
    const headers = { Authorization: `Bearer ${await this.token()}`, Accept: 'application/json' }
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    let response
    try {
      response = await this._fetch(`${this.apiUrl}/api/v1${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
      })
    } catch (error) {
      if (signal?.aborted) throw new PreviewError('aborted', 'aborted', null)
      throw new ApiError({ status: 0, code: 'network_error', message: String(error?.message ?? error) }, { cause: error })
    }
    const text = await response.text()
    let data = null
    try {
      data = text ? JSON.parse(text) : null
    } catch {
      data = null
    }
    if (!response.ok) {
      const error = data?.error ?? {}
      const retry = Number(response.headers.get('retry-after') ?? error.details?.retry_after)
      throw new ApiError({
        status: response.status,
        code: error.code ?? `http_${response.status}`,
        message: error.message ?? (text.slice(0, 200) || response.statusText),
        details: error.details ?? {},
        retryAfter: Number.isFinite(retry) ? retry : null,
      })
    }
    return data
  }

  createSession(projectId, { memoryMb, signal } = {}) {
    const body = { project_id: projectId }
    if (memoryMb !== undefined) body.memory_mb = memoryMb
    return this.request('POST', '/sessions/', { body, signal })
  }

  getSession(sessionId, { signal } = {}) {
    return this.request('GET', `/sessions/${encodeURIComponent(sessionId)}/`, { signal })
  }

  endSession(sessionId) {
    return this.request('DELETE', `/sessions/${encodeURIComponent(sessionId)}/`)
  }

  /** Push the session's `expires_at` out by `minutes` (within the quota's session length: else an
   * `ApiError` `quota.session_length` whose `details.max_expires_at` is the latest allowed). */
  extendSession(sessionId, minutes, { signal } = {}) {
    return this.request('POST', `/sessions/${encodeURIComponent(sessionId)}/extend/`, { body: { minutes }, signal })
  }

  getQuota() {
    return this.request('GET', '/quota/')
  }

  /**
   * Create (or get the live) session for `projectId`, join its channel, wait until it is active.
   * Resolves with the Preview handle (`previewUrl`, `session`, `writeFile`...).
   */
  async createPreview(projectId, { signal, timeoutMs, memoryMb } = {}) {
    if (signal?.aborted) throw new PreviewError('aborted', 'aborted')
    const session = await this.createSession(projectId, { memoryMb, signal })
    const preview = new Preview(this, session)
    try {
      await preview._start({ signal, timeoutMs: timeoutMs ?? this.options.createTimeoutMs })
    } catch (error) {
      // Nothing left running for a preview nobody will use: a session we waited on in vain is ended.
      if (error instanceof PreviewError && (error.code === 'timeout' || error.code === 'aborted')) {
        await preview.end().catch(() => {})
      } else {
        preview.close()
      }
      throw error
    }
    return preview
  }
}

export class Preview {
  constructor(client, session) {
    this.client = client
    this.session = session
    this.projectId = session.project_id
    this.connection = 'offline' // 'connecting' | 'online' | 'offline' | 'closed'
    this._files = new Map() // path -> entry
    this._dirty = new Set() // paths to send
    this._listeners = { status: new Set(), log: new Set(), connection: new Set() }
    this._gen = 0
    this._attempt = 0
    this._rt = null
    this._channel = null
    this._syncing = false
    this._manifestWait = null
    this._manifestParts = new Map()
    this._timers = new Set()
    this._pollTimer = null
    this._pollInFlight = false
    this._pollSoon = false
    this._flushTimer = null
    this._tokens = client.options.maxEventsPerSecond
    this._tokensAt = Date.now()
    this._closed = false
    this._statusWaiters = new Set()
    this._stats = { joins: 0, updatesSent: 0, deletesSent: 0, snapshotsSent: 0, skippedUpToDate: 0, acks: 0, manifests: 0, manifestTimeouts: 0 }
  }

  get previewUrl() {
    return this.session.preview_url ?? null
  }

  get status() {
    return this.session.status
  }

  // --- listeners -------------------------------------------------------------------------------

  /** `cb({ status, previewUrl, session })` on every status change (from session:status or the poll). */
  onStatus(cb) {
    return this._listen('status', cb)
  }

  /** `cb({ stream, line })` for each `agent:log` line (npm install, the dev server, the agent). */
  onLog(cb) {
    return this._listen('log', cb)
  }

  /** `cb(state)`: 'connecting', 'online' (joined and resynced), 'offline' (will reconnect), 'closed'. */
  onConnection(cb) {
    return this._listen('connection', cb)
  }

  _listen(kind, cb) {
    this._listeners[kind].add(cb)
    return () => this._listeners[kind].delete(cb)
  }

  _emit(kind, value) {
    for (const cb of this._listeners[kind]) {
      try {
        cb(value)
      } catch (error) {
        this._log('error', `${kind} listener threw`, error)
      }
    }
  }

  _log(level, message, data) {
    this.client.logger?.(level, message, data)
  }

  /** Counters: joins, updatesSent, deletesSent, snapshotsSent, skippedUpToDate, acks, manifests, manifestTimeouts. */
  stats() {
    return { ...this._stats, pending: [...this._files.values()].filter((e) => e.state === 'pending').length }
  }

  // --- lifecycle -------------------------------------------------------------------------------

  async _start({ signal, timeoutMs }) {
    this._connect()
    this._schedulePoll(0)
    this._every(this.client.options.heartbeatIntervalMs, () => this._heartbeat())
    this._every(Math.max(250, this.client.options.ackTimeoutMs / 2), () => this._watchAcks())
    if (this.session.status === 'active' && this.previewUrl) return
    this._checkLive()
    await new Promise((resolve, reject) => {
      const waiter = { resolve: finish(resolve), reject: finish(reject) }
      const timer = setTimeout(() => waiter.reject(new PreviewError('timeout', `session not active after ${timeoutMs} ms`, this.session)), timeoutMs)
      const onAbort = () => waiter.reject(new PreviewError('aborted', 'aborted', this.session))
      signal?.addEventListener('abort', onAbort, { once: true })
      const self = this
      function finish(settle) {
        return (value) => {
          clearTimeout(timer)
          signal?.removeEventListener('abort', onAbort)
          self._statusWaiters.delete(waiter)
          settle(value)
        }
      }
      this._statusWaiters.add(waiter)
    })
  }

  _checkLive() {
    if (!LIVE.has(this.session.status)) {
      const { status, end_reason: reason, end_detail: detail } = this.session
      throw new PreviewError(status === 'failed' ? 'session.failed' : 'session.ended', `session ${status}${reason ? ` (${reason})` : ''}${detail ? `: ${detail}` : ''}`, this.session)
    }
  }

  _updateSession(update) {
    const before = this.session
    this.session = { ...before, ...update }
    if (before.status === this.session.status && before.preview_url === this.session.preview_url) return
    this._emit('status', { status: this.session.status, previewUrl: this.previewUrl, session: this.session })
    if (this.session.status === 'active' && this.previewUrl) {
      for (const waiter of [...this._statusWaiters]) waiter.resolve()
    }
    if (!LIVE.has(this.session.status)) {
      let error
      try {
        this._checkLive()
      } catch (e) {
        error = e
      }
      for (const waiter of [...this._statusWaiters]) waiter.reject(error)
      this._shutdown(error)
    }
  }

  /** End the session (DELETE) and leave the channel; pending edits reject with `client.closed`. */
  async end() {
    const wasClosed = this._closed
    this._shutdown(new PreviewError('client.closed', 'the preview was ended', this.session))
    if (wasClosed && !LIVE.has(this.session.status)) return this.session
    const session = await this.client.endSession(this.session.id)
    this.session = session
    return session
  }

  /** "Keep my preview": push `expires_at` out by `minutes` (default 30); resolves with the session. */
  async extend(minutes = 30) {
    const session = await this.client.extendSession(this.session.id, minutes)
    this.session = session
    return session
  }

  /** Leave the channel and stop polling without ending the session (e.g. the page is unloading). */
  close() {
    this._shutdown(new PreviewError('client.closed', 'the preview client was closed', this.session))
  }

  _shutdown(error) {
    if (this._closed) return
    this._closed = true
    for (const timer of this._timers) {
      clearTimeout(timer)
      clearInterval(timer)
    }
    this._timers.clear()
    clearTimeout(this._flushTimer)
    if (this._manifestWait) clearTimeout(this._manifestWait.timer)
    const channel = this._channel
    this._teardown()
    if (channel) channel.unsubscribe().catch(() => {})
    for (const entry of this._files.values()) {
      for (const waiter of entry.waiters.splice(0)) waiter.reject(error)
    }
    this._setConnection('closed')
  }

  _every(ms, fn) {
    const timer = setInterval(fn, ms)
    timer.unref?.()
    this._timers.add(timer)
  }

  _later(ms, fn) {
    const timer = setTimeout(() => {
      this._timers.delete(timer)
      fn()
    }, ms)
    this._timers.add(timer)
    return timer
  }

  /** One status poll loop: GET the session, again after an interval (sooner while creating or offline). */
  _schedulePoll(ms) {
    if (this._closed) return
    if (this._pollInFlight) {
      if (ms === 0) this._pollSoon = true
      return
    }
    if (this._pollTimer) {
      if (ms > 0) return
      clearTimeout(this._pollTimer)
      this._timers.delete(this._pollTimer)
    }
    this._pollTimer = this._later(ms, () => {
      this._pollTimer = null
      this._poll()
    })
  }

  async _poll() {
    this._pollInFlight = true
    let next = this.session.status === 'active' && this.connection === 'online' ? this.client.options.activePollIntervalMs : this.client.options.pollIntervalMs
    try {
      const session = await this.client.getSession(this.session.id)
      if (!this._closed) this._updateSession(session)
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        this._updateSession({ status: 'ended', end_reason: this.session.end_reason ?? 'not_found' })
      } else if (error instanceof ApiError && error.retryAfter) {
        next = Math.max(next, error.retryAfter * 1000)
      }
      this._log('warn', 'status poll failed', error)
    } finally {
      this._pollInFlight = false
    }
    const soon = this._pollSoon
    this._pollSoon = false
    this._schedulePoll(soon ? 0 : next)
  }

  async _heartbeat() {
    if (this._closed || this.session.status !== 'active') return
    try {
      await this.client.request('POST', `/sessions/${encodeURIComponent(this.session.id)}/heartbeat/`)
    } catch (error) {
      if (error instanceof ApiError && error.code === 'session.ended') this._schedulePoll(0)
      this._log('warn', 'heartbeat failed', error)
    }
  }

  // --- the channel -----------------------------------------------------------------------------

  _setConnection(state) {
    if (this.connection === state) return
    this.connection = state
    this._emit('connection', state)
  }

  /** One connection: a fresh RealtimeClient with the current token. Any error, close or join timeout
   *  ends it and another is made after a backoff (the official client's own retries are not relied on:
   *  they keep a stale token and, while down, send broadcasts over REST whose acks are lost). */
  async _connect() {
    if (this._closed) return
    const gen = ++this._gen
    this._setConnection('connecting')
    let token
    try {
      token = await this.client.token()
    } catch (error) {
      this._log('error', 'no token for realtime', error)
      return this._lost(gen, 'NO_TOKEN', error)
    }
    if (gen !== this._gen || this._closed) return
    const rt = new RealtimeClient(this.client.realtimeUrl, {
      params: { apikey: this.client.supabaseKey ?? token },
      transport: this.client.transport,
      disconnectOnEmptyChannelsAfterMs: 0, // one channel per client: no lingering socket (or timer) after it
      logger: this.client.logger ? (kind, msg, data) => this.client.logger('debug', `realtime ${kind}: ${msg}`, data) : undefined,
    })
    await rt.setAuth(token) // the join carries the user's token (access_token)
    if (gen !== this._gen || this._closed) return rt.disconnect()
    const channel = rt.channel(`project:${this.projectId}`, { config: { private: true, broadcast: { self: false, ack: false } } })
    channel.on('broadcast', { event: '*' }, (message) => {
      if (gen === this._gen) this._onEvent(message.event, message.payload ?? {})
    })
    this._rt = rt
    this._channel = channel
    channel.subscribe((status, error) => {
      if (gen !== this._gen) return
      if (status === 'SUBSCRIBED') this._joined()
      else this._lost(gen, status, error)
    })
  }

  _teardown() {
    this._gen++
    const rt = this._rt
    this._rt = null
    this._channel = null
    this._syncing = false
    if (this._manifestWait) clearTimeout(this._manifestWait.timer)
    this._manifestWait = null
    if (rt) rt.disconnect().catch(() => {})
  }

  _lost(gen, status, error) {
    if (gen !== this._gen || this._closed) return
    this._log('warn', `realtime ${status}`, error)
    this._teardown()
    this._setConnection('offline')
    const delays = this.client.options.reconnectDelaysMs
    const delay = delays[Math.min(this._attempt, delays.length - 1)] * (0.8 + Math.random() * 0.4)
    this._attempt++
    if (LIVE.has(this.session.status)) this._later(delay, () => this._connect())
    this._schedulePoll(0) // a refused join often means the session is over: ask now
  }

  _joined() {
    this._attempt = 0
    this._stats.joins++
    this._requestManifest()
    this._setConnection('online')
  }

  _send(event, payload) {
    const channel = this._channel
    // Only on a joined channel: realtime-js would otherwise post it over REST (and its ack gets lost).
    if (!channel || channel.state !== 'joined' || !this._rt?.isConnected()) return false
    channel.send({ type: 'broadcast', event, payload }).catch(() => {})
    return true
  }

  /** Ask the agent for its manifest now and resend what it lacks (done after every join). */
  resync() {
    this._requestManifest()
  }

  _requestManifest() {
    if (this._manifestWait) clearTimeout(this._manifestWait.timer)
    const requestId = globalThis.crypto.randomUUID()
    this._syncing = true
    const timer = setTimeout(() => {
      if (this._manifestWait?.requestId !== requestId) return
      this._stats.manifestTimeouts++
      this._log('info', 'no manifest answer: resending everything unacknowledged')
      this._applyManifest(null)
    }, this.client.options.manifestTimeoutMs)
    this._manifestWait = { requestId, timer }
    if (!this._send('files:manifest_request', { request_id: requestId })) {
      clearTimeout(timer)
      this._manifestWait = null
      this._syncing = false
    }
  }

  _onEvent(event, payload) {
    switch (event) {
      case 'file:synced':
        return this._ack(payload)
      case 'files:synced':
        for (const body of payload.files ?? []) this._ack(body)
        return
      case 'agent:error':
        return this._refused(payload)
      case 'agent:manifest':
        return this._manifestPart(payload)
      case 'session:status':
        if (payload.session_id === this.session.id) {
          this._updateSession({ status: payload.status, preview_url: payload.preview_url ?? this.session.preview_url })
        }
        return
      case 'agent:log':
        return this._emit('log', { stream: payload.stream, line: payload.line })
      default:
    }
  }

  _manifestPart(payload) {
    const key = `${payload.reason}:${payload.request_id ?? ''}`
    const parts = Number(payload.parts ?? 1)
    let collected = this._manifestParts.get(key)
    if (!collected || collected.parts !== parts) {
      collected = { parts, got: new Map() }
      this._manifestParts.set(key, collected)
    }
    collected.got.set(Number(payload.part ?? 1), payload.files ?? {})
    if (collected.got.size < parts) return
    this._manifestParts.delete(key)
    this._applyManifest(Object.assign({}, ...collected.got.values()))
  }

  /** Compare the agent's files with ours and mark what it lacks; `null` (no answer): everything unacked. */
  async _applyManifest(files) {
    const wait = this._manifestWait
    if (wait) clearTimeout(wait.timer)
    this._manifestWait = null
    if (files) {
      this._stats.manifests++
      const gen = this._gen
      await Promise.all([...this._files.values()].map((entry) => entry.shaReady))
      if (gen !== this._gen || this._closed) return
    }
    for (const [path, entry] of this._files) {
      if (entry.state === 'refused') continue
      if (files === null) {
        if (entry.state === 'pending') this._dirty.add(path)
        continue
      }
      const known = files[path]
      const agentHasIt = entry.deleted ? !known || known.sha256 == null : known && known.sha256 === entry.sha256
      if (agentHasIt) {
        if (entry.state === 'pending') this._stats.skippedUpToDate++
        this._dirty.delete(path)
        this._settle(entry, { path, version: entry.version, sha256: entry.deleted ? null : entry.sha256, latency_ms: null, source: 'manifest' })
      } else if (!known || known.version < entry.version) {
        if (entry.deleted || entry.content != null) this._dirty.add(path)
      } else if (entry.state === 'pending') {
        // Someone else wrote it at our version or later: our unacknowledged edit goes after theirs.
        entry.version = nextVersion(known.version)
        for (const waiter of entry.waiters) waiter.version = entry.version
        this._dirty.add(path)
      } else {
        this._foreign(entry, known.version, known.sha256)
      }
    }
    this._syncing = false
    this._scheduleFlush(0)
  }

  _foreign(entry, version, sha256) {
    // A newer version from another editor: remember its version (ours go after it), drop our content.
    entry.version = version
    entry.sha256 = sha256 ?? null
    entry.deleted = sha256 == null
    entry.content = null
    entry.state = 'synced'
    this._dirty.delete(entry.path)
  }

  _settle(entry, ack) {
    entry.state = 'synced'
    entry.sentAt = null
    for (const waiter of entry.waiters.splice(0)) waiter.resolve({ ...ack, version: waiter.version })
  }

  _ack(body) {
    const path = body.path
    const version = Number(body.version)
    if (typeof path !== 'string' || !Number.isFinite(version)) return
    this._stats.acks++
    let entry = this._files.get(path)
    if (!entry) {
      entry = newEntry(path)
      this._files.set(path, entry)
      this._foreign(entry, version, body.sha256)
      return
    }
    const done = entry.waiters.filter((w) => w.version <= version)
    entry.waiters = entry.waiters.filter((w) => w.version > version)
    for (const waiter of done) waiter.resolve({ ...body, superseded: waiter.version < version })
    if (version === entry.version) {
      entry.state = 'synced'
      entry.sentAt = null
      this._dirty.delete(path)
    } else if (version > entry.version) {
      this._foreign(entry, version, body.sha256)
    }
  }

  _refused(body) {
    const version = body.version
    for (const entry of this._files.values()) {
      const samePath = entry.path === body.path || (typeof body.path === 'string' && body.path.length >= 200 && entry.path.startsWith(body.path))
      if (!samePath) continue
      const refused = entry.waiters.filter((w) => w.version === version)
      if (!refused.length && entry.version !== version) continue
      entry.waiters = entry.waiters.filter((w) => w.version !== version)
      for (const waiter of refused) waiter.reject(new AgentError(body))
      if (entry.version === version) {
        entry.state = 'refused'
        entry.content = null
        this._dirty.delete(entry.path)
      }
      return
    }
    this._log('warn', `agent:error ${body.code}`, body)
  }

  _watchAcks() {
    if (this.connection !== 'online' || this._syncing) return
    const limit = Date.now() - this.client.options.ackTimeoutMs
    for (const entry of this._files.values()) {
      if (entry.state === 'pending' && entry.sentAt !== null && entry.sentAt < limit && !this._dirty.has(entry.path)) {
        this._log('info', `no ack for ${entry.path} v${entry.version}: resyncing`)
        for (const e of this._files.values()) if (e.state === 'pending') e.sentAt = null
        this._requestManifest()
        return
      }
    }
  }

  // --- edits -----------------------------------------------------------------------------------

  _assertOpen() {
    if (this._closed) throw new PreviewError('client.closed', 'the preview is closed', this.session)
  }

  _entry(path) {
    if (typeof path !== 'string' || path === '') throw new TypeError('path must be a non-empty string')
    let entry = this._files.get(path)
    if (!entry) {
      entry = newEntry(path)
      this._files.set(path, entry)
    }
    return entry
  }

  _edit(entry, fields) {
    Object.assign(entry, fields, { version: nextVersion(entry.version), state: 'pending', sentAt: null })
    this._dirty.add(entry.path)
    const version = entry.version
    const promise = new Promise((resolve, reject) => entry.waiters.push({ version, resolve, reject }))
    this._scheduleFlush(0)
    return promise
  }

  /**
   * Write one file. Resolves with the agent's ack `{ path, version, sha256, latency_ms }` (or
   * `source: "manifest"` when the agent already had this content); rejects with AgentError.
   */
  writeFile(path, content, { encoding } = {}) {
    try {
      this._assertOpen()
      const wire = toWire(content, encoding)
      const entry = this._entry(path)
      const promise = this._edit(entry, { content: wire.content, encoding: wire.encoding, deleted: false, sha256: null })
      const version = entry.version
      entry.shaReady = sha256Hex(wire.bytes).then((hex) => {
        if (entry.version === version && !entry.deleted) entry.sha256 = hex
      })
      return promise
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** Write several files (`[{ path, content, encoding? }]`); large batches go as `files:snapshot`. */
  writeFiles(files) {
    return Promise.all(files.map((file) => this.writeFile(file.path, file.content, { encoding: file.encoding })))
  }

  /** Delete one file; resolves on its `file:synced` (sha256 null). */
  deleteFile(path) {
    try {
      this._assertOpen()
      const entry = this._entry(path)
      const promise = this._edit(entry, { content: null, encoding: null, deleted: true, sha256: null })
      entry.shaReady = Promise.resolve()
      return promise
    } catch (error) {
      return Promise.reject(error)
    }
  }

  _scheduleFlush(ms) {
    if (this._flushTimer || this._closed) return
    this._flushTimer = setTimeout(() => {
      this._flushTimer = null
      this._flush()
    }, ms)
  }

  _take() {
    const { maxEventsPerSecond } = this.client.options
    const now = Date.now()
    this._tokens = Math.min(maxEventsPerSecond, this._tokens + ((now - this._tokensAt) / 1000) * maxEventsPerSecond)
    this._tokensAt = now
    if (this._tokens < 1) return false
    this._tokens -= 1
    return true
  }

  _flush() {
    if (this.connection !== 'online' || this._syncing || this._dirty.size === 0) return
    const { snapshotThreshold, snapshotMaxFiles, snapshotMaxBytes } = this.client.options
    const updates = []
    for (const path of [...this._dirty]) {
      const entry = this._files.get(path)
      if (!entry || (!entry.deleted && entry.content == null)) {
        this._dirty.delete(path)
      } else if (!entry.deleted) {
        updates.push(entry)
      }
    }
    const sent = (entry) => {
      this._dirty.delete(entry.path)
      entry.sentAt = Date.now()
    }
    if (updates.length > snapshotThreshold) {
      let batch = []
      let size = 0
      const sendBatch = () => {
        if (!batch.length) return true
        if (!this._take()) return false
        const files = batch.map((e) => ({ path: e.path, content: e.content, encoding: e.encoding, version: e.version }))
        if (!this._send('files:snapshot', { mode: 'merge', files, sent_at: Date.now() })) return false
        this._stats.snapshotsSent++
        this._stats.updatesSent += batch.length
        batch.forEach(sent)
        batch = []
        size = 0
        return true
      }
      for (const entry of updates) {
        const bytes = wireSize(entry.path, entry.content)
        if (batch.length && (batch.length >= snapshotMaxFiles || size + bytes > snapshotMaxBytes)) {
          if (!sendBatch()) return this._scheduleFlush(100)
        }
        batch.push(entry)
        size += bytes
      }
      if (!sendBatch()) return this._scheduleFlush(100)
    }
    for (const path of [...this._dirty]) {
      const entry = this._files.get(path)
      if (!this._take()) return this._scheduleFlush(1000 / this.client.options.maxEventsPerSecond)
      const ok = entry.deleted
        ? this._send('file:delete', { path, version: entry.version })
        : this._send('file:update', { path, content: entry.content, encoding: entry.encoding, version: entry.version, sent_at: Date.now() })
      if (!ok) return
      this._stats[entry.deleted ? 'deletesSent' : 'updatesSent']++
      sent(entry)
    }
  }
}

function newEntry(path) {
  return { path, version: 0, sha256: null, content: null, encoding: null, deleted: false, state: 'synced', sentAt: null, waiters: [], shaReady: Promise.resolve() }
}

/** Versions only move forward, and start from the clock so a reloaded editor's edits win over its
 *  earlier self's even before (or without) a manifest telling it the agent's versions. */
function nextVersion(current) {
  return Math.max(Number(current) + 1, Date.now())
}
