// Interop matrix case 3 (issue 6): a C-only network of five `hyperseaport dht-node`
// processes on 127.0.0.1, C client (`pipe KEY`) -> C server (`pipe --listen --seed`),
// 10 MiB each way with SHA-256 checksums; and case 6 on the C side (`--allow`: the server's
// firewall drops other client keys). No JS DHT node runs here.
// Usage: node dht_c_matrix.js <hyperseaport>
const { spawn } = require('child_process')
const crypto = require('crypto')
const b4a = require('b4a')

const bin = process.argv[2]
const HOST = '127.0.0.1'
const SIZE = 10 * 1024 * 1024
let failures = 0
function check (cond, msg) {
  if (cond) console.log('ok   ' + msg)
  else { failures++; console.log('FAIL ' + msg) }
}
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex')

function run (args, input) {
  const proc = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  let out = b4a.alloc(0)
  let err = ''
  const waiters = []
  proc.stdout.on('data', (d) => { out = b4a.concat([out, d]); for (const w of waiters.slice()) w() })
  proc.stderr.on('data', (d) => { err += d })
  proc.stdin.on('error', () => {})
  if (input !== undefined) proc.stdin.end(input)
  const exited = new Promise((resolve) => proc.on('exit', (code) => resolve(code)))
  return {
    proc,
    exited,
    out: () => out,
    err: () => err,
    wait (re, ms = 20000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('timeout waiting for ' + re + ': ' + out.toString().slice(0, 200) + err)), ms)
        const w = () => { const m = out.toString('latin1').match(re); if (m) { clearTimeout(timer); waiters.splice(waiters.indexOf(w), 1); resolve(m) } }
        waiters.push(w)
        w()
      })
    }
  }
}

async function main () {
  const nodes = [run(['dht-node', '--host', HOST, '--bootstrap', ''])]
  const m = await nodes[0].wait(/listening [\d.]+:(\d+)/)
  const boot = `${HOST}:${m[1]}`
  for (let i = 0; i < 4; i++) nodes.push(run(['dht-node', '--host', HOST, '--bootstrap', boot]))
  for (const n of nodes) await n.wait(/ready persistent/)
  check(true, 'five C dht-nodes ready')

  const seed = crypto.randomBytes(32).toString('hex')
  const fromServer = crypto.randomBytes(SIZE)
  const fromClient = crypto.randomBytes(SIZE)
  const server = run(['pipe', '--listen', '--seed', seed, '--host', HOST, '--bootstrap', boot], fromServer)
  const key = (await server.wait(/^([0-9a-f]{64})\n/))[1]
  await new Promise((resolve) => setTimeout(resolve, 1500)) // let the announce land
  const client = run(['pipe', key, '--host', HOST, '--bootstrap', boot], fromClient)
  const timer = setTimeout(() => client.proc.kill('SIGKILL'), 90000)
  const code = await client.exited
  clearTimeout(timer)
  if (code !== 0) console.error(client.err())
  check(code === 0, 'C client exits 0')
  const got = client.out()
  check(got.length === SIZE && sha(got) === sha(fromServer), 'C server -> C client: 10 MiB, checksum matches')
  await new Promise((resolve) => setTimeout(resolve, 500))
  const data = server.out().subarray(65)
  check(data.length === SIZE && sha(data) === sha(fromClient), 'C client -> C server: 10 MiB, checksum matches')
  server.proc.kill('SIGTERM')
  check(await server.exited === 0, 'pipe --listen unannounces and exits cleanly on SIGTERM (LSan-checked)')

  // Case 6 (C server side): --allow admits one client key; any other is dropped unanswered.
  const { keyPair } = require('hyperdht')
  const good = crypto.randomBytes(32)
  const goodPk = b4a.toString(keyPair(good).publicKey, 'hex')
  const guarded = run(['pipe', '--listen', '--allow', goodPk, '--host', HOST, '--bootstrap', boot], b4a.from('welcome'))
  const gkey = (await guarded.wait(/^([0-9a-f]{64})\n/))[1]
  await new Promise((resolve) => setTimeout(resolve, 1500))
  const bad = run(['pipe', gkey, '--seed', crypto.randomBytes(32).toString('hex'), '--host', HOST, '--bootstrap', boot], b4a.from('intruder'))
  const badCode = await bad.exited
  check(badCode !== 0 && bad.out().length === 0, `C server rejects an unknown client key (${bad.err().trim()})`)
  const ok = run(['pipe', gkey, '--seed', good.toString('hex'), '--host', HOST, '--bootstrap', boot], b4a.from('friend'))
  const okCode = await ok.exited
  check(okCode === 0 && ok.out().toString() === 'welcome', 'C server accepts the allowed client key')
  await new Promise((resolve) => setTimeout(resolve, 300))
  check(!guarded.out().toString().includes('intruder') && guarded.out().toString().includes('friend'), 'only the allowed client reached the server\'s stdout')
  guarded.proc.kill('SIGTERM')
  check(await guarded.exited === 0, 'guarded pipe --listen exits cleanly on SIGTERM')
  for (const n of nodes) n.proc.kill('SIGTERM')
  if (failures) { console.error(`${failures} checks failed`); process.exit(1) }
  console.log('dht_c_matrix: all checks passed')
}
main().catch((err) => { console.error(err); process.exit(1) })
