// Typed errors. Every error the client throws is a VelocityError with a string `code`.

export class VelocityError extends Error {
  constructor(code, message, options) {
    super(message, options)
    this.name = 'VelocityError'
    this.code = code
  }
}

/** A REST API refusal: `{"error": {"code", "message", "details"}}` with its HTTP status. */
export class ApiError extends VelocityError {
  constructor({ status, code, message, details = {}, retryAfter = null }, options) {
    super(code, message || code, options)
    this.name = 'ApiError'
    this.status = status
    this.details = details ?? {}
    this.retryAfter = retryAfter
  }

  /** Quota refusals list every reason (`code`, `message`, `used`, `limit`); other errors none. */
  get reasons() {
    return Array.isArray(this.details.reasons) ? this.details.reasons : []
  }
}

/** The preview agent refused an edit (`agent:error`): `code` is the agent's, e.g. `parent_segment`. */
export class AgentError extends VelocityError {
  constructor(payload) {
    super(String(payload.code ?? 'agent_error'), String(payload.message ?? payload.code ?? 'refused by the agent'))
    this.name = 'AgentError'
    this.path = payload.path ?? null
    this.version = payload.version ?? null
    this.event = payload.event ?? null
    this.payload = payload
  }
}

/**
 * The preview itself: `session.failed`, `session.ended` (ended while waiting or editing),
 * `timeout`, `aborted`, `client.closed` (after `end()`).
 */
export class PreviewError extends VelocityError {
  constructor(code, message, session = null) {
    super(code, message)
    this.name = 'PreviewError'
    this.session = session
  }
}
