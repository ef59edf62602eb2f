// Shared helpers for the udx interop tests: spawning the C peer (tests/udx/udx_peer.c),
// a JS endpoint on udx-native, and a lossy/reordering UDP forwarder written for the tests.
const UDX = require('udx-native')
const { spawn } = require('child_process')
const crypto = require('crypto')
const dgram = require('dgram')

const PEER = process.argv[2]
if (!PEER) { console.error('usage: node script.js <udx_peer binary>'); process.exit(2) }

function startC (args) {
  const proc = spawn(PEER, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  const events = []
  const waiters = []
  let buf = ''
  let exited = null
  const check = () => {
    for (let i = waiters.length - 1; i >= 0; i--) {
      const w = waiters[i]
      const e = events.find(w.pred)
      if (e) { waiters.splice(i, 1); clearTimeout(w.timer); w.resolve(e) } else if (exited !== null) { waiters.splice(i, 1); clearTimeout(w.timer); w.reject(new Error('C peer exited (' + exited + ') before ' + w.what + '; events: ' + JSON.stringify(events))) }
    }
  }
  proc.stdout.on('data', (d) => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i); buf = buf.slice(i + 1)
      try { events.push(JSON.parse(line)) } catch { console.error('C peer:', line) }
    }
    check()
  })
  proc.on('exit', (code) => { exited = code; check() })
  return {
    proc,
    events,
    wait (what, ms = 60000) {
      const pred = typeof what === 'function' ? what : (e) => e.event === what
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('timeout waiting for C ' + (what.name || what) + '; events: ' + JSON.stringify(events))), ms)
        waiters.push({ pred, resolve, reject, timer, what: String(what) })
        check()
      })
    },
    exit () { return exited !== null ? Promise.resolve(exited) : new Promise((resolve) => proc.on('exit', resolve)) },
    kill () { if (exited === null) proc.kill('SIGKILL') }
  }
}

// A JS endpoint: one socket and one stream (id), accepting packets before connect so that a
// C peer which starts sending first is not stalled behind the default firewall.
function jsEndpoint (id, opts = {}) {
  const u = new UDX()
  const socket = u.createSocket()
  socket.bind(0, '127.0.0.1')
  const stream = u.createStream(id, { firewall: () => false, ...opts })
  const rx = crypto.createHash('sha256')
  const st = { u, socket, stream, rxBytes: 0, rxHash: null, ended: false, closed: false, error: null, messages: [], raw: [] }
  stream.on('data', (d) => { st.rxBytes += d.length; rx.update(d) })
  stream.on('end', () => { st.ended = true; st.rxHash = rx.digest('hex') })
  stream.on('error', (e) => { st.error = e.code || String(e) })
  stream.on('message', (m) => st.messages.push(m.toString()))
  socket.on('message', (m) => st.raw.push(m))
  st.closedP = new Promise((resolve) => stream.on('close', () => { st.closed = true; resolve() }))
  st.port = socket.address().port
  return st
}

// Writes n pseudo-random bytes with back-pressure, then ends; resolves with their sha256.
function jsSource (stream, n) {
  return new Promise((resolve) => {
    const h = crypto.createHash('sha256')
    let left = n
    const pump = () => {
      while (left > 0) {
        const len = Math.min(65536, left)
        const chunk = crypto.randomBytes(len)
        h.update(chunk); left -= len
        if (!stream.write(chunk)) return stream.once('drain', pump)
      }
      stream.end()
      resolve(h.digest('hex'))
    }
    pump()
  })
}

// UDP forwarder between two endpoints that drops a share of packets and reorders some.
// Ports of the two sides are learned lazily: a side is registered with setA/setB.
function lossyForwarder ({ drop = 0.05, reorder = 0.1, dropAcks = () => false, seed = 1 } = {}) {
  const m = dgram.createSocket('udp4')
  let rng = seed
  const rnd = () => { rng = (rng * 1103515245 + 12345) & 0x7fffffff; return rng / 0x7fffffff }
  const fw = { A: 0, B: 0, stats: { fwd: 0, drop: 0, delayed: 0, heartbeats: 0 } }
  m.on('message', (buf, r) => {
    const fromA = r.port === fw.A
    const to = fromA ? fw.B : fw.A
    if (!to) return
    const udx = buf.length >= 20 && buf[0] === 0xff && buf[1] === 1
    const type = udx ? buf[2] : -1
    if (type & 0x20) fw.stats.heartbeats++
    if (udx) {
      const k = (type === 0x20 ? 'hb' : type === 0 ? 'ack' : 'other') + (fromA ? 'A' : 'B')
      fw.stats[k] = (fw.stats[k] || 0) + 1
    }
    const isData = udx && (type & 3)
    const isAck = udx && (type & ~4) === 0
    if ((isData || (isAck && dropAcks(fromA))) && rnd() < drop) { fw.stats.drop++; return }
    fw.stats.fwd++
    if (rnd() < reorder) {
      fw.stats.delayed++
      setTimeout(() => { if (!fw.closed) m.send(buf, to, '127.0.0.1') }, 1 + Math.floor(rnd() * 3))
    } else {
      m.send(buf, to, '127.0.0.1')
    }
  })
  fw.ready = new Promise((resolve) => m.bind(0, '127.0.0.1', () => { fw.port = m.address().port; resolve() }))
  fw.close = () => { fw.closed = true; m.close() }
  return fw
}

let failures = 0
function check (cond, what) {
  if (cond) console.log('ok   ' + what)
  else { failures++; console.log('FAIL ' + what) }
}
async function scenario (name, fn) {
  const t0 = Date.now()
  try { await fn() } catch (e) { failures++; console.log('FAIL ' + name + ': ' + (e.stack || e)) }
  console.log(`# ${name} (${Date.now() - t0} ms)`)
}
function done () {
  console.log(failures ? `${failures} failure(s)` : 'all passed')
  process.exit(failures ? 1 : 0)
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

module.exports = { startC, jsEndpoint, jsSource, lossyForwarder, check, scenario, done, sleep }
