// The libuv DHT I/O layer through the CLI: (a) five `hyperseaport dht-node` processes form a
// private network on 127.0.0.1 (the first with --bootstrap ""), and JS hyperdht peers use it
// for a connect and a mutable put/get; (b) a C dht-node joins a JS createTestnet and the JS
// nodes route to it. JS peers get firewalled: false (docs/testing.md loopback trap).
// Usage: node dht_io_live.js <hyperseaport>
const HyperDHT = require('hyperdht')
const createTestnet = require('hyperdht/testnet')
const { spawn } = require('child_process')
const b4a = require('b4a')

const bin = process.argv[2]
const HOST = '127.0.0.1'
let failures = 0
function check (cond, msg) {
  if (cond) console.log('ok   ' + msg)
  else { failures++; console.log('FAIL ' + msg) }
}

function startNode (args) {
  const proc = spawn(bin, ['dht-node', '--host', HOST, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  const waiters = []
  proc.stdout.on('data', (d) => { out += d; for (const w of waiters.slice()) w() })
  return {
    proc,
    wait (re, ms = 20000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('timeout waiting for ' + re + ' in ' + out)), ms)
        const w = () => { const m = out.match(re); if (m) { clearTimeout(timer); waiters.splice(waiters.indexOf(w), 1); resolve(m) } }
        waiters.push(w)
        w()
      })
    },
    stop () { return new Promise((resolve) => { proc.on('exit', (code) => resolve(code)); proc.kill('SIGTERM') }) }
  }
}

async function privateNetwork () {
  const nodes = [startNode(['--bootstrap', ''])]
  const m = await nodes[0].wait(/listening ([\d.]+):(\d+)/)
  const boot = `${HOST}:${m[2]}`
  for (let i = 0; i < 4; i++) nodes.push(startNode(['--bootstrap', boot]))
  for (const n of nodes) await n.wait(/ready persistent reachable/)
  check(true, 'five C dht-nodes are ready, persistent and reachable')
  const a = new HyperDHT({ bootstrap: [boot], host: HOST, firewalled: false })
  const b = new HyperDHT({ bootstrap: [boot], host: HOST, firewalled: false })
  await a.fullyBootstrapped()
  await b.fullyBootstrapped()
  check(a.table.size >= 5, `JS peer sees ${a.table.size} nodes of the C network`)
  const server = a.createServer((c) => { c.on('data', (d) => c.write(d)); c.on('error', () => {}) })
  await server.listen()
  const conn = b.connect(server.publicKey)
  conn.on('error', () => {})
  conn.write(b4a.from('hello'))
  const echoed = await new Promise((resolve) => {
    conn.once('data', (d) => resolve(d.toString()))
    setTimeout(() => resolve(null), 20000)
  })
  check(echoed === 'hello', 'JS connect through the C network echoes')
  conn.destroy()
  const kp = HyperDHT.keyPair()
  await a.mutablePut(kp, b4a.from('value-1'))
  const got = await b.mutableGet(kp.publicKey)
  check(got && got.value.toString() === 'value-1', 'mutable put/get stored on C nodes')
  await server.close()
  await a.destroy()
  await b.destroy()
  for (const n of nodes) check(await n.stop() === 0, 'dht-node exits cleanly on SIGTERM')
}

async function joinTestnet () {
  const testnet = await createTestnet(5, { host: HOST })
  const node = startNode(['--bootstrap', testnet.bootstrap.map((b) => `${b.host}:${b.port}`).join(',')])
  const m = await node.wait(/listening ([\d.]+):(\d+)/)
  await node.wait(/ready persistent/)
  const port = Number(m[2])
  const peer = new HyperDHT({ bootstrap: testnet.bootstrap, host: HOST, firewalled: false })
  await peer.fullyBootstrapped()
  const res = await peer.ping({ host: HOST, port })
  check(res && res.from.port === port, 'JS pings the C node that joined the testnet')
  let found = false
  for (const n of testnet.nodes) if (n.table.toArray().some((x) => x.port === port)) found = true
  check(found, 'a JS testnet node has the C node in its routing table')
  await peer.destroy()
  check(await node.stop() === 0, 'dht-node exits cleanly')
  await testnet.destroy()
}

async function main () {
  await privateNetwork()
  await joinTestnet()
  if (failures) { console.error(`${failures} checks failed`); process.exit(1) }
  console.log('dht_io_live: all checks passed')
}
main().catch((err) => { console.error(err); process.exit(1) })
