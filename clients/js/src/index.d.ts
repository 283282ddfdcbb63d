// Types for @velocity/preview-client (hand-written; the package ships plain ES modules).

export type SessionStatus = 'creating' | 'active' | 'ended' | 'failed'

/** A session as the REST API returns it (docs/api.md). */
export interface Session {
  id: string
  user_id: string
  project_id: string
  status: SessionStatus
  preview_url: string | null
  end_reason: string | null
  end_detail: string | null
  created_at: string
  /** When the expiry sweep ends it; `extend()` pushes it out. */
  expires_at: string | null
  [field: string]: unknown
}

export interface ClientOptions {
  /** The orchestrator, e.g. `http://127.0.0.1:8000` (a trailing `/api/v1` is accepted). */
  apiUrl: string
  /** The realtime endpoint, e.g. `ws://127.0.0.1:8000/realtime/v1` (the client appends `/websocket`).
   *  Default: from `supabaseUrl` when given, else the orchestrator's embedded endpoint. */
  realtimeUrl?: string
  /** A Supabase project serving realtime (client mode); pair it with `supabaseKey`. */
  supabaseUrl?: string
  /** The key that opens the realtime socket (a Supabase project's anon key); default: the access token. */
  supabaseKey?: string
  /** The signed-in user's access token, or a function answering the current one (called per request and connection). */
  accessToken: string | (() => string | Promise<string>)
  /** A WebSocket class; required on Node 20 (`import WebSocket from 'ws'`), not in browsers. */
  transport?: unknown
  fetch?: typeof globalThis.fetch
  logger?: (level: 'debug' | 'info' | 'warn' | 'error', message: string, data?: unknown) => void
  pollIntervalMs?: number
  activePollIntervalMs?: number
  heartbeatIntervalMs?: number
  manifestTimeoutMs?: number
  ackTimeoutMs?: number
  maxEventsPerSecond?: number
  snapshotThreshold?: number
  snapshotMaxFiles?: number
  snapshotMaxBytes?: number
  reconnectDelaysMs?: number[]
  createTimeoutMs?: number
}

export interface CreatePreviewOptions {
  signal?: AbortSignal
  /** How long to wait for `active` (default 120 s); on timeout or abort the session is ended. */
  timeoutMs?: number
  memoryMb?: 256 | 512 | 1024 | 2048 | 4096
}

/** The agent's acknowledgement (`file:synced`), or `source: "manifest"` when it already had the content. */
export interface FileAck {
  path: string
  version: number
  sha256: string | null
  latency_ms: number | null
  source?: 'manifest'
  /** A later edit of the same path was acknowledged (this one was replaced before it landed). */
  superseded?: boolean
}

export type FileContent = string | ArrayBuffer | ArrayBufferView
export type Encoding = 'utf8' | 'utf-8' | 'base64'

export interface FileInput {
  path: string
  content: FileContent
  encoding?: Encoding
}

export interface StatusEvent {
  status: SessionStatus
  previewUrl: string | null
  session: Session
}

export interface LogLine {
  stream: string
  line: string
}

export type ConnectionState = 'connecting' | 'online' | 'offline' | 'closed'

export interface PreviewStats {
  joins: number
  updatesSent: number
  deletesSent: number
  snapshotsSent: number
  skippedUpToDate: number
  acks: number
  manifests: number
  manifestTimeouts: number
  pending: number
}

export declare class VelocityClient {
  constructor(options: ClientOptions)
  readonly apiUrl: string
  readonly realtimeUrl: string
  token(): Promise<string>
  request<T = unknown>(method: string, path: string, options?: { body?: unknown; signal?: AbortSignal }): Promise<T>
  createSession(projectId: string, options?: { memoryMb?: number; signal?: AbortSignal }): Promise<Session>
  getSession(sessionId: string, options?: { signal?: AbortSignal }): Promise<Session>
  endSession(sessionId: string): Promise<Session>
  /** POST /sessions/{id}/extend/: 409 `quota.session_length` past the quota's session length. */
  extendSession(sessionId: string, minutes: number, options?: { signal?: AbortSignal }): Promise<Session>
  getQuota(): Promise<unknown>
  createPreview(projectId: string, options?: CreatePreviewOptions): Promise<Preview>
}

export declare class Preview {
  readonly session: Session
  readonly projectId: string
  readonly previewUrl: string | null
  readonly status: SessionStatus
  readonly connection: ConnectionState
  writeFile(path: string, content: FileContent, options?: { encoding?: Encoding }): Promise<FileAck>
  writeFiles(files: FileInput[]): Promise<FileAck[]>
  deleteFile(path: string): Promise<FileAck>
  /** Ask the agent for its manifest now and resend what it lacks (done after every join anyway). */
  resync(): void
  onStatus(cb: (event: StatusEvent) => void): () => void
  onLog(cb: (line: LogLine) => void): () => void
  onConnection(cb: (state: ConnectionState) => void): () => void
  stats(): PreviewStats
  /** "Keep my preview": push `expires_at` out by `minutes` (default 30) within the quota's session length. */
  extend(minutes?: number): Promise<Session>
  /** DELETE the session and leave the channel; pending edits reject with `client.closed`. */
  end(): Promise<Session>
  /** Leave the channel and stop polling, leaving the session running. */
  close(): void
}

export declare function createClient(options: ClientOptions): VelocityClient

export declare class VelocityError extends Error {
  readonly code: string
}

export interface QuotaReason {
  code: string
  message: string
  used: number | string
  limit: number | string
}

export declare class ApiError extends VelocityError {
  /** The HTTP status; 0 for a network failure (`code: "network_error"`). */
  readonly status: number
  readonly details: { reasons?: QuotaReason[]; fields?: Record<string, string[]>; retry_after?: number; [key: string]: unknown }
  /** Seconds, from `Retry-After` or `details.retry_after`. */
  readonly retryAfter: number | null
  readonly reasons: QuotaReason[]
}

export declare class AgentError extends VelocityError {
  readonly path: string | null
  readonly version: number | null
  readonly event: string | null
  readonly payload: Record<string, unknown>
}

export declare class PreviewError extends VelocityError {
  /** `session.failed`, `session.ended`, `timeout`, `aborted` or `client.closed`. */
  readonly code: 'session.failed' | 'session.ended' | 'timeout' | 'aborted' | 'client.closed'
  readonly session: Session | null
}
