// The C node as a hyperdht storage node inside a JS hyperdht 6.34 testnet (createTestnet,
// 127.0.0.1), and C hyperdht client operations against JS storage nodes
// (docs/protocol/hyperdht.md §9 cases 2 and 12):
//  - JS announce(topic) reaches C: C verifies the signature (signed over C's id and token) and
//    stores it; a JS lookup gets the record from C.
//  - JS server.listen() self-announces to C; a JS findPeer gets the peer record from C.
//  - JS mutablePut stored by C; C mutableGet reads it back (verified); C mutablePut is read by
//    JS mutableGet; JS immutablePut stored by C.
//  - C announce(topic) accepted by the JS nodes; JS lookup finds it; C lookup finds JS announces.
//  - C announcer: JS nodes store the C server's self-announce and drop it on unannounce.
// Usage: node dht_hyper_live.js <dht_node_tool>
const HyperDHT = require('hyperdht')
const createTestnet = require('hyperdht/testnet')
const b4a = require('b4a')
const { startC } = require('./dht_util')

const tool = process.argv[2]
const HOST = '127.0.0.1'
let failures = 0
function check (cond, msg) {
  if (cond) console.log('ok   ' + msg)
  else { failures++; console.log('FAIL ' + msg) }
}
const hex = (b) => b4a.toString(b, 'hex')
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function main () {
  const testnet = await createTestnet(4, { host: HOST })
  const boot = testnet.bootstrap[0]
  const c = startC(tool, ['--persistent', '--not-firewalled', '--store', '--bootstrap', `${boot.host}:${boot.port}`])
  const [, cport] = (await c.wait(/^listening/)).split(' ').map(Number)
  const ready = (await c.wait(/^ready/)).split(' ')
  check(ready[1] === '1', 'C storage node persistent in the JS testnet')
  // Let the JS nodes learn about C (they add it when it sends them requests with its id).
  await sleep(200)
  const nodes = testnet.nodes.slice(1)
  for (const n of nodes) await n.findNode(b4a.alloc(32, 1)).finished()

  const client = testnet.createNode()
  await client.fullyBootstrapped()

  // 1. JS announce -> C stores; JS lookup gets it from C.
  const kp = HyperDHT.keyPair(b4a.alloc(32, 0x11))
  const topic = b4a.alloc(32, 7)
  const q = nodes[0].announce(topic, kp)
  await q.finished()
  check(q.closestReplies.some((r) => r.from.port === cport), 'JS announce query reached C (C in closest replies)')
  const stored = Number((await c.ask('stored', /^stored/)).split(' ')[1])
  check(stored >= 1, `C stored the JS announce after verifying its signature (${stored} entries)`)
  let fromC = null
  for await (const data of client.lookup(topic)) {
    if (data.from.port === cport) fromC = data
  }
  check(fromC && fromC.peers.some((p) => b4a.equals(p.publicKey, kp.publicKey)), 'JS lookup: C returns the announced record')

  // 2. JS server listen (self-announce) -> findPeer gets the record from C.
  const server = nodes[1].createServer(() => {})
  await server.listen(HyperDHT.keyPair(b4a.alloc(32, 0x22)))
  let peerFromC = null
  for await (const data of client.findPeer(server.publicKey)) {
    if (data.from.port === cport) peerFromC = data
  }
  check(peerFromC && b4a.equals(peerFromC.peer.publicKey, server.publicKey), 'JS findPeer: C routes the self-announced server')
  await server.close()

  // 3. Mutable and immutable values.
  await nodes[2].mutablePut(kp, b4a.from('hello'), { seq: 1 })
  const mg = await c.ask(`mutget ${hex(kp.publicKey)} 0`, /^op mutget/)
  check(/ 1 hello$/.test(mg), `C mutableGet reads the JS mutablePut (${mg})`)
  const seed3 = b4a.alloc(32, 0x33)
  const kp3 = HyperDHT.keyPair(seed3)
  const mp = (await c.ask(`mutput ${hex(seed3)} 5 world`, /^op mutput/)).split(' ')
  check(mp[2] === '0' && Number(mp[3]) >= 3, `C mutablePut accepted by ${mp[3]} JS nodes`)
  const got = await client.mutableGet(kp3.publicKey)
  check(got && got.seq === 5 && b4a.toString(got.value) === 'world', 'JS mutableGet reads the C mutablePut')
  const before = Number((await c.ask('stored', /^stored/)).split(' ')[1])
  const imm = await nodes[0].immutablePut(b4a.from('immutable'))
  const after = Number((await c.ask('stored', /^stored/)).split(' ')[1])
  check(after === before + 1, 'C stored the JS immutablePut (hash checked)')
  const ig = await client.immutableGet(imm.hash)
  check(ig && b4a.toString(ig.value) === 'immutable', 'JS immutableGet')

  // 4. C announce -> JS nodes verify and store; JS lookup finds it; C lookup finds JS announce.
  const seed4 = b4a.alloc(32, 0x44)
  const kp4 = HyperDHT.keyPair(seed4)
  const topic4 = b4a.alloc(32, 0x55)
  const an = (await c.ask(`announce ${hex(topic4)} ${hex(seed4)}`, /^op announce/)).split(' ')
  check(an[2] === '0' && Number(an[3]) >= 3, `C announce accepted by ${an[3]} JS nodes (signatures verified by JS)`)
  let jsFound = 0
  for await (const data of client.lookup(topic4)) {
    if (data.from.port !== cport && data.peers.some((p) => b4a.equals(p.publicKey, kp4.publicKey))) jsFound++
  }
  check(jsFound >= 3, `JS lookup finds the C announce on ${jsFound} JS nodes`)
  const lk = (await c.ask(`lookup ${hex(topic)} ${hex(kp.publicKey)}`, /^op lookup/)).split(' ')
  // Stored by every persistent node except the announcer (nodes[0]) and C itself (a query
  // never asks its own node): nodes[1] and nodes[2].
  check(Number(lk[5]) >= 2, `C lookup finds the JS announce on ${lk[5]} JS nodes`)

  // 5. C announcer (a C server's announce loop): JS findPeer finds the C server's record on
  //    3 JS relays; after unserve (UNANNOUNCE to each relay) it is gone.
  const seed6 = b4a.alloc(32, 0x66)
  const kp6 = HyperDHT.keyPair(seed6)
  c.send(`serve ${hex(seed6)}`)
  const relays = await c.wait(/^relays/)
  check(relays === 'relays 3', `C announcer: ${relays} JS relays accepted the self-announce`)
  let withRecord = 0
  for await (const data of client.findPeer(kp6.publicKey)) {
    if (data.peer && b4a.equals(data.peer.publicKey, kp6.publicKey)) withRecord++
  }
  check(withRecord === 3, `JS findPeer: ${withRecord} JS nodes route to the C server`)
  c.send('unserve')
  await c.wait(/^stopped/)
  withRecord = 0
  for await (const data of client.findPeer(kp6.publicKey)) {
    if (data.peer && b4a.equals(data.peer.publicKey, kp6.publicKey)) withRecord++
  }
  check(withRecord === 0, 'JS findPeer after the C unannounce: no record left')

  c.stop()
  await client.destroy()
  await testnet.destroy()
  if (failures) { console.error(`${failures} checks failed`); process.exit(1) }
  console.log('dht_hyper_live: all checks passed')
}

main().catch((err) => { console.error(err); process.exit(1) })
