// Drives @supabase/realtime-js (or @supabase/supabase-js) for the Python tests.
//
// Usage: node client.mjs <realtime http base> <apikey> [vsn] [realtime-js|supabase-js] [access token]
// With supabase-js the client is createClient(<project url>, apikey, {accessToken}).realtime: the project URL is the
// realtime base without its /realtime/v1, as a frontend passes it.
// Reads one JSON command per line on stdin, writes one JSON event per line on stdout:
//   {"cmd":"join","topic":"room1","config":{...},"presence":true,"postgres":[{...}]}
//   {"cmd":"send","id":"1","topic":"room1","event":"e","payload":{...}}   (or "hex":"cafe" for raw bytes)
//   {"cmd":"http_send","id":"2","topic":"room1","event":"e","payload":{...}}
//   {"cmd":"track","id":"3","topic":"room1","payload":{...}}  {"cmd":"untrack","id":"4","topic":"room1"}
//   {"cmd":"leave","id":"5","topic":"room1"}  {"cmd":"set_auth","token":"..."}  {"cmd":"exit"}
//   {"cmd":"rest_send","id":"6","topic":"room1","config":{...},"event":"e","payload":{...}}  (a channel never
//     subscribed: realtime-js sends it through POST /api/broadcast with a messages list)
//   {"cmd":"presence_state","id":"7","topic":"room1"}
// Events: ready, status, broadcast, presence, postgres_changes, system, result, error.
import readline from 'node:readline'
import { RealtimeClient } from '@supabase/realtime-js'
import { createClient } from '@supabase/supabase-js'
import WebSocket from 'ws'

const [base, apikey, vsn = '2.0.0', library = 'realtime-js', accessToken = ''] = process.argv.slice(2)
const out = (event) => process.stdout.write(JSON.stringify(event) + '\n')

function realtimeClient() {
  if (library === 'supabase-js') {
    const options = {
      auth: { persistSession: false, autoRefreshToken: false },
      realtime: { transport: WebSocket, vsn },
    }
    if (accessToken) options.accessToken = async () => accessToken
    return createClient(base.replace(/\/realtime\/v1\/?$/, ''), apikey, options).realtime
  }
  return new RealtimeClient(base.replace(/^http/, 'ws'), { params: { apikey }, transport: WebSocket, vsn })
}

const client = realtimeClient()
const channels = new Map()

const encodeBytes = (value) =>
  value instanceof ArrayBuffer ? { hex: Buffer.from(value).toString('hex') } : value

function join({ topic, config = {}, presence = false, postgres = [] }) {
  const channel = client.channel(topic, { config })
  channel.on('broadcast', { event: '*' }, (msg) =>
    out({ type: 'broadcast', topic, event: msg.event, payload: encodeBytes(msg.payload), meta: msg.meta })
  )
  channel.on('system', {}, (msg) => out({ type: 'system', topic, payload: msg }))
  if (presence) {
    for (const event of ['sync', 'join', 'leave']) {
      channel.on('presence', { event }, (msg) =>
        out({ type: 'presence', topic, event, msg, state: channel.presenceState() })
      )
    }
  }
  for (const binding of postgres) {
    channel.on('postgres_changes', binding, (msg) => out({ type: 'postgres_changes', topic, msg }))
  }
  channels.set(topic, channel)
  channel.subscribe((status, err) => out({ type: 'status', topic, status, error: err?.message ?? null }))
}

async function run(cmd) {
  const channel = channels.get(cmd.topic)
  switch (cmd.cmd) {
    case 'join':
      return join(cmd)
    case 'send': {
      const payload = cmd.hex ? Uint8Array.from(Buffer.from(cmd.hex, 'hex')).buffer : cmd.payload
      return channel.send({ type: 'broadcast', event: cmd.event, payload })
    }
    case 'http_send':
      return channel.httpSend(cmd.event, cmd.payload).then(
        (value) => value,
        (err) => ({ error: err.message })
      )
    case 'track':
      return channel.track(cmd.payload)
    case 'untrack':
      return channel.untrack()
    case 'leave':
      return channel.unsubscribe()
    case 'rest_send': {
      const unjoined = client.channel(cmd.topic, { config: cmd.config ?? {} })
      const value = await unjoined.send({ type: 'broadcast', event: cmd.event, payload: cmd.payload })
      await client.removeChannel(unjoined)
      return value
    }
    case 'presence_state':
      return channel.presenceState()
    case 'set_auth':
      return client.setAuth(cmd.token)
    case 'exit':
      client.disconnect()
      setTimeout(() => process.exit(0), 50)
      return 'bye'
    default:
      throw new Error(`unknown command ${cmd.cmd}`)
  }
}

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  if (!line.trim()) return
  const cmd = JSON.parse(line)
  try {
    const value = await run(cmd)
    out({ type: 'result', id: cmd.id ?? null, cmd: cmd.cmd, value: value ?? null })
  } catch (err) {
    out({ type: 'error', id: cmd.id ?? null, cmd: cmd.cmd, message: String(err?.message ?? err) })
  }
})
process.stdin.on('end', () => {
  client.disconnect()
  process.exit(0)
})
out({ type: 'ready', library, endpoint: client.endpointURL?.() ?? null })
