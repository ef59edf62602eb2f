// Interop test of src/agent/mux.c against npm protomux 3.12: the JS Protomux runs over an
// in-memory duplex whose frames are piped to a C peer (tests/agent/mux_peer.c) as
// length-prefixed records; the C side is driven by commands and reports events.
// usage: node agent_mux.js <mux_peer>
'use strict'
const Protomux = require('protomux')
const c = require('compact-encoding')
const { Duplex } = require('streamx')
const { spawn } = require('child_process')
const crypto = require('crypto')

const peerPath = process.argv[2]
let failures = 0
let checks = 0
function check (cond, msg) {
  checks++
  if (!cond) {
    failures++
    console.error('FAIL ' + msg)
  }
}

// ---- the C peer -------------------------------------------------------------------------
const child = spawn(peerPath, [], { stdio: ['pipe', 'pipe', 'inherit'] })
function sendRecord (kind, body) {
  const h = Buffer.alloc(5)
  h.writeUInt32LE(body.length + 1, 0)
  h[4] = kind.charCodeAt(0)
  child.stdin.write(Buffer.concat([h, body]))
}
const command = (line) => sendRecord('C', Buffer.from(line))

const events = []
let tolerateRaces = false
let waiters = []
function onEvent (line) {
  events.push(line)
  const race = tolerateRaces && /^error (send|sendkey|close) unknown channel/.test(line)
  if (line.startsWith('error') && !race) check(false, 'C peer: ' + line)
  waiters = waiters.filter((w) => !w.test())
}
// Resolves with the first event (from `from` on) matching re, or fails after a timeout.
function waitEvent (re, from = 0, ms = 10000) {
  return new Promise((resolve) => {
    const w = {
      test () {
        for (let i = from; i < events.length; i++) {
          const m = events[i].match(re)
          if (m) { clearTimeout(w.timer); resolve(m); return true }
        }
        return false
      }
    }
    if (w.test()) return
    w.timer = setTimeout(() => {
      check(false, 'timed out waiting for C event ' + re)
      waiters = waiters.filter((x) => x !== w)
      resolve(null)
    }, ms)
    waiters.push(w)
  })
}

// The duplex the JS Protomux writes to: each write is one frame for the C peer.
const stream = new Duplex({
  write (data, cb) { sendRecord('F', data); cb(null) }
})
let pending = Buffer.alloc(0)
child.stdout.on('data', (chunk) => {
  pending = Buffer.concat([pending, chunk])
  while (pending.length >= 4) {
    const n = pending.readUInt32LE(0)
    if (pending.length < 4 + n) break
    const kind = String.fromCharCode(pending[4])
    const body = pending.subarray(5, 4 + n)
    pending = pending.subarray(4 + n)
    if (kind === 'F') stream.push(Buffer.from(body))
    else if (kind === 'E') onEvent(body.toString())
  }
})

const mux = new Protomux(stream)
const tick = () => new Promise((resolve) => setTimeout(resolve, 20))
const fnv = (b) => {
  let h = 2166136261
  for (const x of b) h = Math.imul(h ^ x, 16777619) >>> 0
  return h.toString(16).padStart(8, '0')
}

// A JS channel that records what it receives.
function jsChannel (protocol, id, log) {
  const ch = mux.createChannel({
    protocol,
    id,
    handshake: c.raw,
    messages: [
      { encoding: c.raw, onmessage: (m) => log.push(['m0', Buffer.from(m)]) },
      { encoding: c.string, onmessage: (m) => log.push(['m1', m]) }
    ],
    onopen: (hs) => log.push(['open', Buffer.from(hs || [])]),
    onclose: (remote) => log.push(['close', remote])
  })
  return ch
}
async function until (pred, what, ms = 10000) {
  const end = Date.now() + ms
  while (!pred()) {
    if (Date.now() > end) { check(false, 'timed out: ' + what); return false }
    await tick()
  }
  return true
}

async function jsOpensEcho () {
  // JS opens; C receives a request, accepts with handshake "c-ok" and echoes messages.
  const log = []
  const from = events.length
  const ch = jsChannel('echo', null, log)
  ch.open(Buffer.from('hello-js'))
  const req = await waitEvent(/^req echo - ([0-9a-f]+)$/, from)
  check(req && req[1] === Buffer.from('hello-js').toString('hex'), 'C saw the JS handshake')
  const open = await waitEvent(/^open (\d+) ([0-9a-f]+)$/, from)
  check(open && open[2] === Buffer.from('hello-js').toString('hex'), 'C open event has the handshake')
  await until(() => ch.opened, 'JS channel opened')
  check(log[0] && log[0][0] === 'open' && log[0][1].toString() === 'c-ok', 'JS got the C handshake')

  ch.messages[0].send(Buffer.from('raw bytes'))
  ch.messages[1].send('a string ✓')
  const big = crypto.randomBytes(1 << 20)
  ch.messages[0].send(big)
  await until(() => log.length >= 4, 'three echoes')
  check(log[1] && log[1][0] === 'm0' && log[1][1].toString() === 'raw bytes', 'raw echo')
  check(log[2] && log[2][0] === 'm1' && log[2][1] === 'a string ✓', 'string echo (type 1)')
  check(log[3] && log[3][0] === 'm0' && Buffer.compare(log[3][1], big) === 0, '1 MiB echo intact')
  const bigEv = await waitEvent(new RegExp(`^msg \\d+ 0 ${big.length} [0-9a-f]+ ${fnv(big)} -$`), from)
  check(bigEv !== null, 'C saw the 1 MiB message intact')

  ch.close()
  await waitEvent(new RegExp(`^close ${open[1]}$`), from)
  return open ? Number(open[1]) : 0
}

async function cOpensToJs () {
  // C opens with an id; JS accepts through pair(); messages both ways; JS closes.
  const log = []
  let ch = null
  mux.pair({ protocol: 'from-c' }, (id) => {
    ch = jsChannel('from-c', id, log)
    ch.open(Buffer.from('js-ok'))
  })
  const from = events.length
  command('echo off')
  command('open from-c abcd ' + Buffer.from('c-hello').toString('hex'))
  const opened = await waitEvent(/^opened (\d+)$/, from)
  const cid = opened && opened[1]
  const open = await waitEvent(new RegExp(`^open ${cid} ([0-9a-f]+)$`), from)
  check(open && open[1] === Buffer.from('js-ok').toString('hex'), 'C got the JS handshake')
  await until(() => ch && ch.opened, 'JS accepted the C channel')
  check(ch && Buffer.compare(ch.id, Buffer.from('abcd', 'hex')) === 0, 'channel id passed')
  check(log[0] && log[0][1].toString() === 'c-hello', 'JS got the C handshake')
  command(`send ${cid} 1 ${c.encode(c.string, 'from C').toString('hex')}`)
  command(`send ${cid} 0 -`)
  await until(() => log.length >= 3, 'messages from C')
  check(log[1] && log[1][0] === 'm1' && log[1][1] === 'from C', 'JS got a type-1 message from C')
  check(log[2] && log[2][0] === 'm0' && log[2][1].length === 0, 'JS got an empty message from C')
  ch.messages[0].send(Buffer.from('to C'))
  await waitEvent(new RegExp(`^msg ${cid} 0 4 ${Buffer.from('to C').toString('hex')} `), from)
  // C closes: JS sees a remote close.
  command(`close ${cid}`)
  await until(() => log.some((e) => e[0] === 'close'), 'JS saw the C close')
  check(log.some((e) => e[0] === 'close' && e[1] === true), 'close was remote')
  mux.unpair({ protocol: 'from-c' })
  command('echo on')
}

async function rejects () {
  // C rejects protocols starting with "reject"; JS rejects what nobody paired.
  const log = []
  const ch = jsChannel('reject-me', null, log)
  ch.open(Buffer.alloc(0))
  check(await ch.fullyOpened() === false, 'JS channel refused by C')
  check(log.some((e) => e[0] === 'close' && e[1] === true), 'JS saw the reject as a remote close')
  const from = events.length
  command('open nobody-here - -')
  const opened = await waitEvent(/^opened (\d+)$/, from)
  await waitEvent(new RegExp(`^close ${opened && opened[1]}$`), from)
}

async function simultaneous () {
  // Both sides open the same key before seeing the other's open: they pair without requests.
  const log = []
  const from = events.length
  command('open sym 01 ' + Buffer.from('c-side').toString('hex'))
  const ch = jsChannel('sym', Buffer.from([1]), log)
  ch.open(Buffer.from('js-side'))
  const opened = await waitEvent(/^opened (\d+)$/, from)
  await waitEvent(new RegExp(`^open ${opened && opened[1]} ${Buffer.from('js-side').toString('hex')}$`), from)
  await until(() => ch.opened, 'JS sym opened')
  check(log[0] && log[0][1].toString() === 'c-side', 'JS paired with the C open')
  check(!events.slice(from).some((e) => e.startsWith('req sym')), 'no open request for a pairing open')
  ch.close()
  await waitEvent(new RegExp(`^close ${opened && opened[1]}$`), from)
}

async function manyChannels () {
  // 200 channels at once (each a TCP connection in the proxy), a message each, then closed.
  const n = 200
  const logs = []
  const chans = []
  for (let i = 0; i < n; i++) {
    logs.push([])
    const ch = jsChannel('tcp', c.encode(c.uint, i), logs[i])
    ch.open(Buffer.alloc(0))
    ch.messages[0].send(Buffer.from('conn ' + i))
    chans.push(ch)
  }
  await until(() => logs.every((l) => l.length >= 2), 'echo on every channel')
  let ok = 0
  for (let i = 0; i < n; i++) if (logs[i][1] && logs[i][1][1].toString() === 'conn ' + i) ok++
  check(ok === n, `every channel got its own echo (${ok}/${n})`)
  const from = events.length
  command('count')
  const count = await waitEvent(/^count (\d+)$/, from)
  check(count && Number(count[1]) === n, 'C has every channel open')
  for (const ch of chans) ch.close()
  await tick()
  const from2 = events.length
  command('count')
  const count2 = await waitEvent(/^count (\d+)$/, from2)
  check(count2 && count2[1] === '0', 'C closed every channel')
}

async function batches () {
  // JS corks: one batch frame with opens and messages; C answers its items in one batch.
  const logs = [[], [], []]
  const from = events.length
  mux.cork()
  const chans = logs.map((log, i) => {
    const ch = jsChannel('batch', Buffer.from([i]), log)
    ch.open(Buffer.alloc(0))
    ch.messages[1].send('item ' + i)
    return ch
  })
  mux.uncork()
  await until(() => logs.every((l) => l.length >= 2), 'batched echoes')
  check(logs.every((l, i) => l[1] && l[1][1] === 'item ' + i), 'echoes of a batch')
  check(events.slice(from).filter((e) => e.startsWith('req batch')).length === 3, 'three requests from one batch')
  // C corks: several messages on several channels in one frame.
  const opens = events.slice(from).filter((e) => e.startsWith('open ')).map((e) => e.split(' ')[1])
  command('echo off')
  command('cork')
  for (const [i, cid] of opens.entries()) {
    command(`send ${cid} 0 ${Buffer.from('b' + i).toString('hex')}`)
    command(`send ${cid} 0 ${Buffer.from('c' + i).toString('hex')}`)
  }
  command('uncork')
  await until(() => logs.every((l) => l.length >= 4), 'C batch delivered')
  check(logs.every((l, i) => l[2] && l[2][1].toString() === 'b' + i && l[3][1].toString() === 'c' + i),
    'JS decoded the C batch in order')
  command('echo on')
  for (const ch of chans) ch.close()
}

async function reuse () {
  // A JS channel id is reused after close; C treats it as a new channel.
  const log = []
  const ch = jsChannel('echo', null, log)
  if (!ch) return check(false, 'echo channel could be created again after close')
  ch.open(Buffer.alloc(0))
  await until(() => ch.opened, 'reopened echo')
  ch.messages[0].send(Buffer.from('again'))
  await until(() => log.length >= 2, 'echo after reuse')
  check(log[1] && log[1][1].toString() === 'again', 'echo on a reused id')
  ch.close()
}

// Random opens, sends and closes on both sides over 8 shared keys, with the frames of both
// directions in flight at once. Each payload names the key of the channel it was sent on, as
// its sender knows it, and a sequence number from one counter. Checks: no protocol error on
// either side, every message arrives on a channel of the same key, in order, and everything
// closes cleanly.
async function randomized (steps) {
  let seed = crypto.randomInt(1, 2 ** 31)
  const seed0 = seed
  const rnd = (n) => { seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0; return seed % n }
  const KEYS = 8
  const keyHex = (k) => Buffer.from([k]).toString('hex')
  const js = new Array(KEYS).fill(null) // the JS channel per key (protomux: unique)
  const cIds = new Set() // C channel ids believed open (only picks targets: C checks itself)
  let seq = 0
  let sent = 0
  let received = 0
  let bad = 0
  const last = new Map() // receiving channel instance -> last sequence number
  let instance = 0
  tolerateRaces = true // a send or close racing a close from the other side is not a bug
  command('echo off')

  function inOrder (id, n) {
    if (last.has(id) && last.get(id) >= n) { bad++; check(false, 'messages out of order on ' + id) }
    last.set(id, n)
  }
  function jsOpen (k) {
    const ch = jsChannel('rnd', Buffer.from([k]), [])
    if (!ch) return null
    const inst = 'js:' + (++instance)
    ch.messages[0].onmessage = (m) => {
      const [key, n] = Buffer.from(m).toString().slice(1).split(':')
      received++
      if (key !== keyHex(k)) { bad++; check(false, `JS got key ${key} on a channel of key ${keyHex(k)}`) }
      inOrder(inst, Number(n))
    }
    ch.onclose = () => { if (js[k] === ch) js[k] = null }
    js[k] = ch
    return ch
  }
  mux.pair({ protocol: 'rnd' }, (id) => {
    const k = id[0]
    if (js[k] || rnd(10) < 3) return // declined: protomux rejects it
    const ch = jsOpen(k)
    if (ch) ch.open(Buffer.alloc(0))
  })
  const cInst = new Map() // C channel id -> instance, renewed at each open
  let scanned = events.length
  function scan () { // follow the C side from its events
    for (; scanned < events.length; scanned++) {
      const e = events[scanned].split(' ')
      if (e[0] === 'opened' || e[0] === 'open') {
        if (!cIds.has(e[1])) cInst.set(e[1], 'c:' + (++instance))
        cIds.add(e[1])
      } else if (e[0] === 'close') {
        cIds.delete(e[1])
      } else if (e[0] === 'msg' && e.length === 7) {
        const payload = Buffer.from(e[4], 'hex').toString()
        if (payload[0] !== 'J') continue
        const [key, n] = payload.slice(1).split(':')
        received++
        if (key !== e[6]) { bad++; check(false, `C got key ${key} on channel ${e[1]} of key ${e[6]}`) }
        inOrder(cInst.get(e[1]) || 'c:?' + e[1], Number(n))
      }
    }
  }
  for (let step = 0; step < steps; step++) {
    scan()
    const op = rnd(8)
    const k = rnd(KEYS)
    if (op === 0 && !js[k]) {
      const ch = jsOpen(k)
      if (ch) ch.open(Buffer.alloc(0))
    } else if (op <= 2 && js[k] && !js[k].closed) {
      js[k].messages[0].send(Buffer.from(`J${keyHex(k)}:${++seq}`))
      sent++
    } else if (op === 3 && js[k]) {
      js[k].close()
      js[k] = null
    } else if (op === 4) {
      command(`open rnd ${keyHex(k)} -`)
    } else if (op <= 6 && cIds.size) {
      const ids = [...cIds]
      command(`sendkey ${ids[rnd(ids.length)]} ${++seq}`)
      sent++
    } else if (op === 7 && cIds.size && rnd(3) === 0) {
      const ids = [...cIds]
      const cid = ids[rnd(ids.length)]
      command(`close ${cid}`)
      cIds.delete(cid)
    }
    if (rnd(4) === 0) await tick()
  }
  await tick()
  scan()
  for (const ch of js) if (ch) ch.close()
  await tick()
  scan()
  for (const cid of cIds) command(`close ${cid}`)
  await tick()
  const before = events.length
  command('count')
  const count = await waitEvent(/^count (\d+)$/, before)
  scan()
  check(count && count[1] === '0', `C has no channel left after the random phase (seed ${seed0})`)
  check(!stream.destroyed, `JS protomux accepted every frame (seed ${seed0})`)
  check(bad === 0, `random phase: every message on its own key, in order (seed ${seed0})`)
  check(received > sent / 5, `random phase delivered messages (${received} of ${sent} sent, seed ${seed0})`)
  mux.unpair({ protocol: 'rnd' })
  command('echo on')
  tolerateRaces = false
  console.log(`agent_mux: random phase seed=${seed0}: ${sent} sent, ${received} received`)
}

async function main () {
  const timer = setTimeout(() => { console.error('FAIL: overall timeout'); process.exit(1) }, 100000)
  await jsOpensEcho()
  await cOpensToJs()
  await rejects()
  await simultaneous()
  await manyChannels()
  await batches()
  await reuse()
  await randomized(Number(process.argv[3] || 2000))
  await tick()
  check(!events.some((e) => e.startsWith('error') && !/^error (send|sendkey|close) unknown channel/.test(e)), 'no errors in the C peer')
  child.stdin.end()
  await new Promise((resolve) => child.on('exit', resolve))
  clearTimeout(timer)
  if (process.env.MUX_EVENTS) require('fs').writeFileSync(process.env.MUX_EVENTS, events.join('\n') + '\n')
  check(child.exitCode === 0, 'C peer exited cleanly (ASan/LSan clean)')
  console.log(`agent_mux: ${checks - failures}/${checks} checks passed, ${events.length} C events`)
  process.exit(failures ? 1 : 0)
}
main()
