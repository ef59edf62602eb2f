// Interop matrix cases 1 and 2 (issue 6): JS createTestnet, C client (`hyperseaport pipe KEY`) ->
// JS hyperdht server and JS client -> C server (`pipe --listen`), 10 MiB each way with SHA-256 checksums. The JS DHTs get
// firewalled: false (docs/testing.md loopback trap), so the server is OPEN and the C client
// connects directly after the relayed PEER_HANDSHAKE. Also: a server whose firewall rejects
// the C client's key gets no connection (matrix case 6, JS side).
// Usage: node dht_pipe_matrix.js <hyperseaport>
const HyperDHT = require('hyperdht')
const createTestnet = require('hyperdht/testnet')
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

function startListener (bootstrap, input, extra = []) {
  const proc = spawn(bin, ['pipe', '--listen', '--host', HOST, '--bootstrap', bootstrap, ...extra], { stdio: ['pipe', 'pipe', 'inherit'] })
  let buf = b4a.alloc(0)
  let key = null
  let onKey
  const keyP = new Promise((resolve) => { onKey = resolve })
  proc.stdout.on('data', (d) => {
    buf = b4a.concat([buf, d])
    if (!key) {
      const i = buf.indexOf(10)
      if (i !== -1) { key = buf.subarray(0, i).toString(); buf = buf.subarray(i + 1); onKey(key) }
    }
  })
  proc.stdin.on('error', () => {})
  proc.stdin.end(input)
  return { proc, key: keyP, data: () => buf, stop () { proc.kill('SIGTERM') } }
}

async function jsClientToCServer (testnet, dht) {
  const bootstrap = testnet.bootstrap.map((b) => `${b.host}:${b.port}`).join(',')
  const fromServer = crypto.randomBytes(SIZE)
  const fromClient = crypto.randomBytes(SIZE)
  const l = startListener(bootstrap, fromServer)
  const key = await l.key
  await new Promise((resolve) => setTimeout(resolve, 1500)) // let the announce land
  const conn = dht.connect(b4a.from(key, 'hex'))
  const chunks = []
  const done = new Promise((resolve) => {
    conn.on('data', (d) => chunks.push(d))
    conn.on('end', resolve)
    conn.on('error', (e) => { console.error('client error', e.message); resolve() })
    setTimeout(resolve, 60000)
  })
  conn.end(fromClient)
  await done
  const got = b4a.concat(chunks)
  check(got.length === SIZE && sha(got) === sha(fromServer), 'C server -> JS client: 10 MiB, checksum matches')
  await new Promise((resolve) => setTimeout(resolve, 500))
  const data = l.data()
  check(data.length === SIZE && sha(data) === sha(fromClient), 'JS client -> C server: 10 MiB, checksum matches')
  conn.destroy()
  l.stop()
}

function runPipe (key, bootstrap, input) {
  return new Promise((resolve) => {
    const proc = spawn(bin, ['pipe', key, '--host', HOST, '--bootstrap', bootstrap], { stdio: ['pipe', 'pipe', 'pipe'] })
    const out = []
    let err = ''
    proc.stdout.on('data', (d) => out.push(d))
    proc.stderr.on('data', (d) => { err += d })
    const timer = setTimeout(() => proc.kill('SIGKILL'), 90000)
    proc.on('exit', (code) => { clearTimeout(timer); resolve({ code, out: b4a.concat(out), err }) })
    proc.stdin.on('error', () => {})
    proc.stdin.end(input)
  })
}

async function main () {
  const testnet = await createTestnet(5, { host: HOST })
  const bootstrap = testnet.bootstrap.map((b) => `${b.host}:${b.port}`).join(',')
  const dht = new HyperDHT({ bootstrap: testnet.bootstrap, host: HOST, firewalled: false })
  await dht.fullyBootstrapped()
  const fromServer = crypto.randomBytes(SIZE)
  const fromClient = crypto.randomBytes(SIZE)
  let received = null
  let remoteKey = null
  const server = dht.createServer((conn) => {
    remoteKey = conn.remotePublicKey
    const chunks = []
    conn.on('data', (d) => chunks.push(d))
    conn.on('end', () => { received = b4a.concat(chunks) })
    conn.on('error', () => {})
    conn.end(fromServer)
  })
  await server.listen()
  const key = b4a.toString(server.publicKey, 'hex')
  const res = await runPipe(key, bootstrap, fromClient)
  if (res.code !== 0) console.error(res.err)
  check(res.code === 0, 'C pipe client exits 0')
  check(res.out.length === SIZE && sha(res.out) === sha(fromServer), 'JS server -> C client: 10 MiB, checksum matches')
  await new Promise((resolve) => setTimeout(resolve, 200))
  check(received && received.length === SIZE && sha(received) === sha(fromClient), 'C client -> JS server: 10 MiB, checksum matches')
  check(remoteKey && remoteKey.length === 32, 'JS server saw the C client\'s static key')
  await server.close()

  await jsClientToCServer(testnet, dht)

  // Case 6 (C server side, JS client): a key not in --allow gets no handshake reply.
  const guarded = startListener(bootstrap, b4a.from('secret'), ['--allow', b4a.toString(HyperDHT.keyPair().publicKey, 'hex')])
  const gkey = await guarded.key
  await new Promise((resolve) => setTimeout(resolve, 1500))
  const intruder = dht.connect(b4a.from(gkey, 'hex'))
  const outcome = await new Promise((resolve) => {
    intruder.on('open', () => resolve('open'))
    intruder.on('error', (e) => resolve(e.code || e.message))
    setTimeout(() => resolve('timeout'), 60000)
  })
  check(outcome !== 'open' && outcome !== 'timeout', `C server firewall rejects the JS client's key (${outcome})`)
  intruder.destroy()
  guarded.stop()

  // Case 6 (JS server side): the firewall rejects every key: the C client must fail.
  let rejected = 0
  const closed = dht.createServer({ firewall: () => { rejected++; return true } }, () => {})
  await closed.listen()
  const res2 = await runPipe(b4a.toString(closed.publicKey, 'hex'), bootstrap, b4a.from('x'))
  check(res2.code !== 0 && rejected > 0, `firewall rejecting the C client's key: pipe fails (${res2.err.trim()})`)
  await closed.close()
  await dht.destroy()
  await testnet.destroy()
  if (failures) { console.error(`${failures} checks failed`); process.exit(1) }
  console.log('dht_pipe_matrix: all checks passed')
}
main().catch((err) => { console.error(err); process.exit(1) })
