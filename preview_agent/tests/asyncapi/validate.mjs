// Validates an AsyncAPI document with the official parser; prints each problem and exits 1 on any.
import { readFileSync } from 'node:fs'
import { Parser } from '@asyncapi/parser'

const file = process.argv[2]
const { document, diagnostics } = await new Parser().parse(readFileSync(file, 'utf8'), { source: file })
const problems = diagnostics.filter((d) => d.severity <= 1) // 0 error, 1 warning
for (const d of problems) console.log(`${d.severity === 0 ? 'error' : 'warning'} ${d.code} at ${d.path.join('.')}: ${d.message}`)
if (!document || problems.length) process.exit(1)
console.log(`ok: AsyncAPI ${document.version()}, ${document.allMessages().length} messages, ${document.allOperations().length} operations`)
