// Matrix case 5 through the libuv I/O layer (docs/protocol/hyperdht.md §9): announce/lookup,
// mutable and immutable put/get between the C client operations (hyper_client.h) running on
// hsp_dht_io (tests/dht/dht_io_tool) and JS hyperdht 6.34, in both directions, on two
// loopback networks:
//   (a) a JS createTestnet: JS storage nodes;
//   (b) five `hyperseaport dht-node` processes: C storage nodes on hsp_dht_io.
// Each: C puts / JS gets, JS puts / C gets (mutable and immutable), C announces / JS looks
// up, JS announces / C looks up, C unannounces / JS finds nothing.
// Usage: node dht_io_ops.js <dht_io_tool> <hyperseaport>
const HyperDHT = require('hyperdht')
const createTestnet = require('hyperdht/testnet')
const { spawn } = require('child_process')
const b4a = require('b4a')
const { startC } = require('./dht_util')

const tool = process.argv[2]
const bin = process.argv[3]
const HOST = '127.0.0.1'
let failures = 0
function check (cond, msg) {
  if (cond) console.log('ok   ' + msg)
  else { failures++; console.log('FAIL ' + msg) }
}
const hex = (b) => b4a.toString(b, 'hex')

function startNode (args) {
  const proc = spawn(bin, ['dht-node', '--host', HOST, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  const waiters = []
  proc.stdout.on('data', (d) => { out += d; for (const w of waiters.slice()) w() })
  return {
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

function stopC (c) {
  return new Promise((resolve) => { c.proc.on('exit', (code) => resolve(code)); c.stop() })
}

async function lookupHolders (dht, topic, publicKey) {
  let n = 0
  for await (const data of dht.lookup(topic)) {
    if (data.peers.some((p) => b4a.equals(p.publicKey, publicKey))) n++
  }
  return n
}

// The four directions of case 5 between the C tool `c` and the JS node `js`. `tag` names the
// network; `minNodes` is how many storage nodes a write must reach.
async function matrix (tag, c, js, minNodes) {
  const seedC = b4a.alloc(32, tag === 'js' ? 0x31 : 0x32)
  const kpC = HyperDHT.keyPair(seedC)
  const kpJ = HyperDHT.keyPair(b4a.alloc(32, tag === 'js' ? 0x41 : 0x42))

  // mutable: C puts, JS gets; JS puts (a newer seq), C gets
  const mp = (await c.ask(`mutput ${hex(seedC)} 3 c-mutable-${tag}`, /^op mutput/)).split(' ')
  check(mp[2] === '0' && Number(mp[3]) >= minNodes, `[${tag}] C mutablePut committed on ${mp[3]} nodes`)
  const got = await js.mutableGet(kpC.publicKey)
  check(got && got.seq === 3 && b4a.toString(got.value) === `c-mutable-${tag}`, `[${tag}] JS mutableGet reads the C put (signature verified by JS)`)
  await js.mutablePut(kpJ, b4a.from(`js-mutable-${tag}`), { seq: 7 })
  const mg = (await c.ask(`mutget ${hex(kpJ.publicKey)} 0`, /^op mutget/)).split(' ')
  check(mg[2] === '0' && Number(mg[3]) >= 1 && mg[4] === '7' && mg[5] === `js-mutable-${tag}`,
    `[${tag}] C mutableGet reads the JS put (${mg.slice(2).join(' ')}; signature verified by C)`)

  // immutable: C puts, JS gets; JS puts, C gets
  const ip = (await c.ask(`immput c-immutable-${tag}`, /^op immput/)).split(' ')
  check(ip[2] === '0' && Number(ip[3]) >= minNodes, `[${tag}] C immutablePut committed on ${ip[3]} nodes`)
  const ig = await js.immutableGet(b4a.from(ip[4], 'hex'))
  check(ig && b4a.toString(ig.value) === `c-immutable-${tag}`, `[${tag}] JS immutableGet reads the C put`)
  const jput = await js.immutablePut(b4a.from(`js-immutable-${tag}`))
  const cg = (await c.ask(`immget ${hex(jput.hash)}`, /^op immget/)).split(' ')
  check(cg[2] === '0' && cg[3] === `js-immutable-${tag}`, `[${tag}] C immutableGet reads the JS put (hash checked by C)`)

  // announce: C announces, JS looks up; JS announces, C looks up; C unannounces
  const topicC = b4a.alloc(32, tag === 'js' ? 0x51 : 0x52)
  const an = (await c.ask(`announce ${hex(topicC)} ${hex(seedC)}`, /^op announce/)).split(' ')
  check(an[2] === '0' && Number(an[3]) >= minNodes, `[${tag}] C announce accepted by ${an[3]} nodes`)
  const holders = await lookupHolders(js, topicC, kpC.publicKey)
  check(holders >= minNodes, `[${tag}] JS lookup finds the C announce on ${holders} nodes`)
  const topicJ = b4a.alloc(32, tag === 'js' ? 0x61 : 0x62)
  await js.announce(topicJ, kpJ).finished()
  const lk = (await c.ask(`lookup ${hex(topicJ)} ${hex(kpJ.publicKey)}`, /^op lookup/)).split(' ')
  check(lk[2] === '0' && Number(lk[4]) >= minNodes - 1, `[${tag}] C lookup finds the JS announce on ${lk[4]} of ${lk[3]} replies`)
  const un = (await c.ask(`unannounce ${hex(topicC)} ${hex(seedC)}`, /^op unannounce/)).split(' ')
  check(un[2] === '0', `[${tag}] C unannounce done (${un[3]} nodes)`)
  const left = await lookupHolders(js, topicC, kpC.publicKey)
  check(left === 0, `[${tag}] JS lookup after the C unannounce finds no record (${left})`)
}

async function jsNetwork () {
  const testnet = await createTestnet(5, { host: HOST })
  const boot = testnet.bootstrap.map((b) => `${b.host}:${b.port}`).join(',')
  const c = startC(tool, ['--bootstrap', boot])
  await c.wait(/^ready/)
  const js = testnet.createNode()
  await js.fullyBootstrapped()
  await matrix('js', c, js, 3)
  const tag = 'js'
  check(await stopC(c) === 0, `[${tag}] dht_io_tool exits cleanly (ASan leak check included)`)
  await js.destroy()
  await testnet.destroy()
}

async function cNetwork () {
  const nodes = [startNode(['--bootstrap', ''])]
  const m = await nodes[0].wait(/listening ([\d.]+):(\d+)/)
  const boot = `${HOST}:${m[2]}`
  for (let i = 0; i < 4; i++) nodes.push(startNode(['--bootstrap', boot]))
  for (const n of nodes) await n.wait(/ready persistent reachable/)
  const c = startC(tool, ['--bootstrap', boot])
  await c.wait(/^ready/)
  const js = new HyperDHT({ bootstrap: [boot], host: HOST, firewalled: false, ephemeral: true })
  await js.fullyBootstrapped()
  await matrix('c', c, js, 3)
  const tag = 'c'
  check(await stopC(c) === 0, `[${tag}] dht_io_tool exits cleanly (ASan leak check included)`)
  await js.destroy()
  for (const n of nodes) check(await n.stop() === 0, 'dht-node exits cleanly')
}

async function main () {
  await jsNetwork()
  await cNetwork()
  if (failures) { console.error(`${failures} checks failed`); process.exit(1) }
  console.log('dht_io_ops: all checks passed')
}
main().catch((err) => { console.error(err); process.exit(1) })
