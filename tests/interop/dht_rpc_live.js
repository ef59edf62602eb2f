// The C dht-rpc node (driven by dht_node_tool over real UDP on 127.0.0.1) inside JS
// dht-rpc 6.27 networks. Cases follow docs/protocol/dht-rpc.md §8.2:
//  A. C persistent node joins a JS network (bootstrapper + 5 persistent JS nodes):
//     C becomes persistent with id = hash(127.0.0.1, port), JS tables hold C, C's table holds
//     the JS nodes, JS findNode closest includes C, C findNode closest = all JS nodes;
//     C pings JS; tokens (issued, echoed, zero token -> INVALID_TOKEN with fresh token);
//     UNKNOWN_COMMAND for app command 43 and internal command 9 (with closer nodes);
//     ignored command 44 times out; PING_NAT answered to the requested port;
//     DELAYED_PING delayed; garbage datagrams ignored.
//  B. C node as bootstrapper: JS nodes bootstrap from it, become persistent and store C.
//  C. C ephemeral (default, firewalled) client: learns its address, stays out of JS tables.
// Usage: node dht_rpc_live.js <dht_node_tool>
const DHT = require('dht-rpc')
const peer = require('dht-rpc/lib/peer')
const b4a = require('b4a')
const dgram = require('dgram')
const { startC } = require('./dht_util')

const tool = process.argv[2]
const HOST = '127.0.0.1'
let failures = 0
function check (cond, msg) {
  if (cond) console.log('ok   ' + msg)
  else { failures++; console.log('FAIL ' + msg) }
}

async function bootstrapper () {
  for (let i = 0; i < 20; i++) {
    const port = 30000 + Math.floor(Math.random() * 20000)
    const node = DHT.bootstrapper(port, HOST, { host: HOST })
    try { await node.fullyBootstrapped(); return node } catch { await node.destroy() }
  }
  throw new Error('no free port')
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const idHex = (port) => b4a.toString(peer.id(HOST, port), 'hex')

async function caseA () {
  const boot = await bootstrapper()
  const bootPort = boot.address().port
  const js = []
  for (let i = 0; i < 5; i++) {
    const n = new DHT({ bootstrap: [`${HOST}:${bootPort}`], ephemeral: false, firewalled: false, host: HOST })
    await n.fullyBootstrapped()
    js.push(n)
  }
  const all = [boot, ...js]
  const c = startC(tool, ['--persistent', '--not-firewalled', '--bootstrap', `${HOST}:${bootPort}`])
  const [, cport] = (await c.wait(/^listening/)).split(' ').map(Number)
  const ready = (await c.wait(/^ready/)).split(' ')
  check(ready[1] === '1' && ready[2] === idHex(cport), `A: C persistent with id = hash(127.0.0.1:${cport})`)
  const cid = peer.id(HOST, cport)
  await sleep(500)
  const holding = all.filter((n) => n.table.has(cid)).length
  check(holding >= 5, `A: ${holding}/6 JS routing tables hold C`)
  const table = await c.ask('table', /^table/)
  const inTable = all.filter((n) => table.includes(`${HOST}:${n.address().port}`)).length
  check(inTable === 6, `A: C table holds ${inTable}/6 JS nodes (${table.split(' ')[1]} entries)`)
  const nat = await c.ask('nat', /^nat/)
  check(nat === `nat ${HOST}:${cport}`, `A: C NAT sampler = ${nat.slice(4)}`)

  const target = b4a.alloc(32, 0xaa)
  const q = js[2].findNode(target)
  await q.finished()
  const fromC = q.closestReplies.find((r) => r.from.port === cport)
  check(!!fromC && fromC.from.id && b4a.equals(fromC.from.id, cid), 'A: JS findNode closestReplies include C with its verified id')
  const cclosest = await c.ask('findnode ' + b4a.toString(target, 'hex'), /^closest/)
  const cdone = await c.wait(/^done/)
  const jsPorts = all.map((n) => n.address().port)
  const got = cclosest.split(' ').slice(2).map((a) => Number(a.split(':')[1]))
  check(cdone.startsWith('done 0') && got.length === 6 && jsPorts.every((p) => got.includes(p)), `A: C findNode closest = the 6 JS nodes (${cclosest})`)

  const pong = await c.ask(`ping ${HOST}:${bootPort}`, /^pong/)
  check(pong === `pong 0 ${HOST}:${cport}`, `A: C PING to JS answered, to = C's address (${pong})`)

  const to = { host: HOST, port: cport }
  const r1 = await js[0].request({ command: 42, target, value: b4a.from('hi') }, to)
  check(r1.error === 0 && r1.token && r1.token.byteLength === 32 && b4a.toString(r1.value) === 'pong', 'A: app command 42 answered with a token and value')
  check(r1.from.id && b4a.equals(r1.from.id, cid), 'A: C reply id validates as hash(127.0.0.1, C port)')
  check(r1.closerNodes && r1.closerNodes.length >= 5, `A: reply lists ${r1.closerNodes && r1.closerNodes.length} closer nodes`)
  const r2 = await js[1].request({ command: 42, token: r1.token, target, value: b4a.from('hi') }, to)
  check(r2.error === 0, 'A: echoed token accepted (from another JS node on the same IP)')
  const r3 = await js[0].request({ command: 42, token: b4a.alloc(32), value: b4a.from('hi') }, to)
  check(r3.error === 2 && r3.token && !b4a.equals(r3.token, b4a.alloc(32)) && !r3.closerNodes, 'A: zero token -> INVALID_TOKEN with a fresh token, no closer nodes')
  const r4 = await js[0].request({ command: 43, target }, to)
  check(r4.error === 1 && r4.closerNodes && r4.closerNodes.length > 0, 'A: unhandled app command -> UNKNOWN_COMMAND with closer nodes')
  const internal = (cmd, target, value) => new Promise((resolve, reject) => {
    js[0]._request(to, false, true, cmd, target, value, null, resolve, reject)
  })
  const r5 = await internal(9, target, null)
  check(r5.error === 1 && r5.closerNodes && r5.closerNodes.length > 0, 'A: unknown internal command -> UNKNOWN_COMMAND with closer nodes')
  let timedOut = false
  try { await js[0].request({ command: 44 }, to, { retry: false }) } catch (err) { timedOut = err.code === 'REQUEST_TIMEOUT' }
  check(timedOut, 'A: ignored app command -> requester times out')
  const portValue = b4a.alloc(2)
  portValue.writeUInt16LE(js[3].io.serverSocket.address().port)
  const r6 = await new Promise((resolve, reject) => js[3]._request(to, false, true, 1, null, portValue, null, resolve, reject))
  check(r6.to.port === js[3].io.serverSocket.address().port, 'A: PING_NAT answered to the requested port')
  const t0 = Date.now()
  await js[0].delayedPing(to, 300)
  const dt = Date.now() - t0
  check(dt >= 290, `A: DELAYED_PING 300 ms answered after ${dt} ms`)

  const sock = dgram.createSocket('udp4')
  await new Promise((resolve) => sock.bind(0, HOST, resolve))
  const junk = [b4a.from([0x03]), b4a.from([0x03, 0x05, 0x00]), b4a.from([0x13, 0x04, 1, 2, 127, 0, 0, 1, 0, 0, 0xff]), b4a.alloc(1000, 0xff), b4a.from('03ffffffffffffffffff', 'hex')]
  for (const j of junk) sock.send(j, cport, HOST)
  await sleep(100)
  sock.close()
  const pong2 = await js[4].ping(to)
  check(pong2.from.port === cport, 'A: C still answers after malformed datagrams')

  // Loss (§8.2 #10): a relay in front of a JS node drops the first 2 datagrams from C. C must
  // resend identical bytes (same tid) about 1 s apart and succeed on the 3rd send.
  const relay = dgram.createSocket('udp4')
  await new Promise((resolve) => relay.bind(0, HOST, resolve))
  const seen = []
  let back = null
  relay.on('message', (msg, rinfo) => {
    if (rinfo.port === js[4].address().port) { relay.send(msg, back.port, back.address); return }
    back = rinfo
    seen.push({ t: Date.now(), hex: b4a.toString(msg, 'hex') })
    if (seen.length > 2) relay.send(msg, js[4].address().port, HOST)
  })
  const t1 = Date.now()
  const lossPong = await c.ask(`ping ${HOST}:${relay.address().port}`, /^pong/)
  const took = Date.now() - t1
  relay.close()
  check(lossPong.startsWith('pong 0 '), `loss: C PING through a lossy relay answered after ${took} ms`)
  check(seen.length === 3 && seen.every((x) => x.hex === seen[0].hex), 'loss: 3 sends with identical bytes (same tid)')
  const gaps = seen.slice(1).map((x, i) => x.t - seen[i].t)
  check(gaps.every((g) => g >= 900 && g <= 2500), `loss: retransmissions ~1 s apart (${gaps.join(', ')} ms)`)

  // Flood: 100k garbage and malformed-but-plausible datagrams from 4 sockets. The C node
  // keeps answering and its RSS stays bounded.
  const rss = () => Number(require('fs').readFileSync(`/proc/${c.proc.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1])
  const rssBefore = rss()
  const senders = []
  for (let i = 0; i < 4; i++) {
    const sk = dgram.createSocket('udp4')
    await new Promise((resolve) => sk.bind(0, HOST, resolve))
    sk.on('message', () => {})
    senders.push(sk)
  }
  let sent = 0
  for (let batch = 0; batch < 100; batch++) {
    for (let i = 0; i < 1000; i++) {
      let msg
      const r = Math.random()
      if (r < 0.3) msg = require('crypto').randomBytes(1 + Math.floor(Math.random() * 300))
      else {
        // request header with random flags/command/fields, truncated at a random point
        msg = require('crypto').randomBytes(10 + Math.floor(Math.random() * 120))
        msg[0] = Math.random() < 0.8 ? 0x03 : 0x13
        msg[1] = Math.floor(Math.random() * 32)
      }
      senders[i & 3].send(msg, cport, HOST)
      sent++
    }
    await sleep(5)
  }
  await sleep(300)
  const rssAfter = rss()
  for (const sk of senders) sk.close()
  const alive = await js[4].ping(to)
  check(alive.from.port === cport, `flood: C answers after ${sent} garbage datagrams`)
  check(rssAfter - rssBefore < 64 * 1024, `flood: C RSS ${rssBefore} kB -> ${rssAfter} kB (ASan build)`)

  c.stop()
  for (const n of all) await n.destroy()
}

async function caseB () {
  const c = startC(tool, ['--bootstrapper'])
  const [, cport] = (await c.wait(/^listening/)).split(' ').map(Number)
  const ready = (await c.wait(/^ready/)).split(' ')
  check(ready[1] === '1' && ready[2] === idHex(cport), 'B: C bootstrapper persistent at once')
  const js = []
  for (let i = 0; i < 3; i++) {
    const n = new DHT({ bootstrap: [`${HOST}:${cport}`], ephemeral: false, firewalled: false, host: HOST })
    await n.fullyBootstrapped()
    js.push(n)
  }
  check(js.every((n) => !n.ephemeral && n.id), 'B: JS nodes bootstrapped from C became persistent')
  const cid = peer.id(HOST, cport)
  check(js.every((n) => n.table.has(cid)), 'B: every JS table holds C')
  const q = js[2].findNode(b4a.alloc(32, 0x11))
  await q.finished()
  check(q.closestReplies.length === 3, `B: JS findNode through C reaches C and the other JS nodes (${q.closestReplies.length} closest)`)
  const table = await c.ask('table', /^table/)
  check(js.every((n) => table.includes(`${HOST}:${n.address().port}`)), 'B: C table holds the JS nodes')
  c.stop()
  for (const n of js) await n.destroy()
}

async function caseC () {
  const boot = await bootstrapper()
  const bootPort = boot.address().port
  const js = []
  for (let i = 0; i < 3; i++) {
    const n = new DHT({ bootstrap: [`${HOST}:${bootPort}`], ephemeral: false, firewalled: false, host: HOST })
    await n.fullyBootstrapped()
    js.push(n)
  }
  const c = startC(tool, ['--ephemeral', '--bootstrap', `${HOST}:${bootPort}`])
  const [sport, cport] = (await c.wait(/^listening/)).split(' ').slice(1).map(Number)
  const ready = (await c.wait(/^ready/)).split(' ')
  check(ready[1] === '0', 'C: ephemeral C node has no id')
  const nat = await c.ask('nat', /^nat/)
  check(nat === `nat ${HOST}:${cport}` || nat === `nat ${HOST}:${sport}`, `C: ephemeral C learned its address (${nat.slice(4)})`)
  const table = await c.ask('table', /^table/)
  check(Number(table.split(' ')[1]) === 4, `C: ephemeral C table holds the 4 JS nodes (${table})`)
  const all = [boot, ...js]
  check(all.every((n) => !n.table.has(peer.id(HOST, sport)) && !n.table.has(peer.id(HOST, cport))), 'C: no JS table holds the ephemeral C node')
  c.stop()
  for (const n of all) await n.destroy()
}

async function main () {
  await caseA()
  await caseB()
  await caseC()
  if (failures) { console.error(`${failures} checks failed`); process.exit(1) }
  console.log('dht_rpc_live: all checks passed')
}

main().catch((err) => { console.error(err); process.exit(1) })
