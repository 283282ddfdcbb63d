// The sample editor: the official client (clients/js) in a browser, no bundler.
import { ApiError, createClient } from '/clients/js/src/index.js'

const $ = (id) => document.getElementById(id)
const form = $('start')
form.projectId.value ||= `sample-${crypto.randomUUID()}`
const log = (line) => {
  $('log').textContent += `${new Date().toLocaleTimeString()} ${line}\n`
  $('log').scrollTop = $('log').scrollHeight
}

let preview = null
let timer = null

form.addEventListener('submit', async (event) => {
  event.preventDefault()
  const velocity = createClient({ apiUrl: form.apiUrl.value, accessToken: form.token.value.trim() })
  $('status').textContent = 'creating…'
  try {
    preview = await velocity.createPreview(form.projectId.value)
  } catch (error) {
    const reasons = error instanceof ApiError ? error.reasons.map((r) => r.message).join('; ') : ''
    $('status').textContent = `${error.code}: ${error.message} ${reasons}`
    return
  }
  preview.onStatus(({ status }) => ($('status').textContent = status))
  preview.onConnection((state) => log(`channel ${state}`))
  preview.onLog(({ stream, line }) => log(`[${stream}] ${line}`))
  $('status').textContent = 'active'
  $('end').disabled = false
  await save()
  $('preview').src = preview.previewUrl
})

async function save() {
  if (!preview) return
  try {
    const ack = await preview.writeFile('index.html', $('source').value)
    log(`synced index.html v${ack.version} in ${ack.latency_ms ?? '?'} ms`)
    $('preview').src = `${preview.previewUrl}?v=${ack.version}` // reload the (cross-origin) frame
  } catch (error) {
    log(`${error.code}: ${error.message}`)
  }
}

$('source').addEventListener('input', () => {
  clearTimeout(timer)
  timer = setTimeout(save, 150)
})

$('end').addEventListener('click', async () => {
  await preview?.end()
  $('end').disabled = true
  $('status').textContent = 'ended'
})
