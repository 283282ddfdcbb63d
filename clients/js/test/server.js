// A real orchestrator for the tests, as `make up` runs it: a temp var dir, `manage.py migrate`, then
// `python -m velocity.run` (daphne, the task cluster, the local machine provider) on a free port.
// VELOCITY_PYTHON picks the interpreter (the pytest wrapper passes its own); else the repo's .venv.
import { spawn, execFile } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')

function python() {
  if (process.env.VELOCITY_PYTHON) return process.env.VELOCITY_PYTHON
  for (const candidate of [join(REPO_ROOT, '.venv', 'bin', 'python'), '/work/main/.venv/bin/python']) {
    if (existsSync(candidate)) return candidate
  }
  return 'python3'
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolvePort(port))
    })
  })
}

async function waitForHealth(url, child, timeoutMs) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`velocity.run exited with ${child.exitCode}`)
    try {
      const response = await fetch(url)
      if (response.ok) return
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 150))
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms`)
}

export async function startServer() {
  const root = mkdtempSync(join(tmpdir(), 'velocity-jsclient-'))
  const port = await freePort()
  const env = { ...process.env }
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'DJANGO_SETTINGS_MODULE', 'SUPABASE_URL', 'SUPABASE_JWT_SECRET']) delete env[name]
  Object.assign(env, {
    VELOCITY_VAR_DIR: join(root, 'var'),
    HOST: '127.0.0.1',
    PORT: String(port),
    DEBUG: 'true',
    MACHINE_PROVIDER: 'local',
    LOG_LEVEL: process.env.VELOCITY_LOG_LEVEL ?? 'warning',
    PYTHONPATH: REPO_ROOT,
  })
  const py = python()
  const manage = (...args) => run(py, ['manage.py', ...args], { cwd: REPO_ROOT, env, maxBuffer: 1 << 20 })
  await manage('migrate', '--no-input', '-v0') // also writes the var dir's JWT secret, which issue_token reads
  const child = spawn(py, ['-m', 'velocity.run'], {
    cwd: REPO_ROOT,
    env,
    detached: true, // its own process group, stopped as one
    stdio: ['ignore', process.env.VELOCITY_SERVER_OUTPUT ? 'inherit' : 'ignore', 'inherit'],
  })
  const url = `http://127.0.0.1:${port}`
  const server = {
    url,
    root,
    /** Tokens from `manage.py issue_token`, one per `[sub, role]`, run in one Django process (each
     *  start of Django costs seconds on a busy machine). */
    async tokens(requests) {
      const calls = requests.map(([sub, role = 'authenticated']) => ['--sub', sub, '--role', role])
      const code = `from django.core.management import call_command\nfor args in ${JSON.stringify(calls)}:\n    call_command("issue_token", *args)`
      const { stdout } = await manage('shell', '-c', code)
      const lines = stdout.split('\n').filter((line) => /^[\w-]+\.[\w-]+\.[\w-]+$/.test(line.trim())).map((line) => line.trim())
      if (lines.length !== requests.length) throw new Error(`issue_token printed ${lines.length} tokens for ${requests.length}`)
      return lines
    },
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r))
        try {
          process.kill(-child.pid, 'SIGINT') // velocity.run stops its children and the local machines
        } catch {
          // already gone
        }
        const timer = setTimeout(() => {
          try {
            process.kill(-child.pid, 'SIGKILL')
          } catch {
            // already gone
          }
        }, 30000)
        await exited
        clearTimeout(timer)
      }
      rmSync(root, { recursive: true, force: true })
    },
  }
  try {
    await waitForHealth(`${url}/health`, child, 60000)
  } catch (error) {
    await server.stop()
    throw error
  }
  return server
}
