// Data plane end to end (issue 8) on a loopback DHT: three services of one role, proxies
// with each balancing policy. The registry's WATCH push is stood in for by this script: a
// service's "register"/"deregister" line is passed on to every proxy at once.
//   A  round-robin spreads 3,000 connections within +-5 %
//   B  hash keeps a client on one instance
//   C  p2c and least-conn prefer the fast instance (50 ms injected on one)
//   D  kill -9 of an instance under 200 open connections: its sessions are detected dead,
//      no new connection fails, it is not chosen until it returns, then it is again
//   E  health check: backend stopped -> deregistered within 3 checks; started -> registered
//   F  drain: SIGTERM during a 50 MiB upload; it completes, new connections go elsewhere
//   G  waiting: a client of a proxy with no instance succeeds once one registers 2 s later;
//      without one it is closed after --wait with a log line
// Usage: node dataplane_e2e.js <hyperseaport> <dp_node>
const crypto = require('crypto')
const net = require('net')
const { HOST, check, sleep, run, dhtNet, backend, client, many, failures } = require('./dataplane_lib')

const [hsp, dp] = process.argv.slice(2)
const INTERVAL = 300 // health check interval (ms)

let dht
const proxies = new Set()
const registered = new Map() // key -> order
let order = 0
function push () {
  const keys = [...registered.entries()].sort((a, b) => a[1] - b[1]).map((e) => e[0])
  for (const p of proxies) p.send('sync ' + keys.join(' '))
}

function startService (i, b, seed, extra = []) {
  let key = null
  const s = run(dp, ['service', '--bootstrap', dht.boot, '--target-port', String(b.port), '--seed', seed,
    '--check', 'tcp', '--interval', String(INTERVAL), ...extra], 'svc' + i, (line) => {
    const m = line.match(/^key ([0-9a-f]{64})/)
    if (m) key = m[1]
    if (line === 'register') { registered.set(key, order++); push() }
    if (line === 'deregister') { registered.delete(key); for (const p of proxies) p.send('remove ' + key) }
  })
  return s
}

async function startProxy (policy, extra = []) {
  const p = run(dp, ['proxy', '--bootstrap', dht.boot, '--balance', policy, ...extra], 'proxy-' + policy)
  const port = Number((await p.wait(/^port (\d+)/))[1])
  proxies.add(p)
  push()
  p.port = port
  return p
}

async function stopProxy (p) {
  proxies.delete(p)
  p.send('exit')
  return p.exited
}

function tally (res) {
  const counts = {}
  let errors = 0
  for (const x of res) {
    if (x.error) errors++
    else counts[x.id] = (counts[x.id] || 0) + 1
  }
  return { counts, errors }
}

// A connection that stays open until release() (then it ends and waits for the close).
function heldClient (port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, HOST)
    let data = ''
    let closedAt = 0
    const closed = new Promise((resolve) => sock.on('close', () => { closedAt = Date.now(); resolve() }))
    sock.on('error', () => {})
    sock.on('data', (d) => {
      data += d
      if (data.includes('\n') && !sock.idResolved) {
        sock.idResolved = true
        resolve({
          id: data.slice(0, data.indexOf('\n')),
          closed,
          closedAt: () => closedAt,
          release (payload) { sock.end(payload); return closed.then(() => data) }
        })
      }
    })
    setTimeout(() => reject(new Error('held client timeout')), 30000)
  })
}

async function main () {
  dht = await dhtNet(hsp)
  const backs = await Promise.all([0, 1, 2].map((i) => backend('inst' + i)))
  const seeds = [0, 1, 2].map(() => crypto.randomBytes(32).toString('hex'))
  const svcs = backs.map((b, i) => startService(i, b, seeds[i]))
  const keys = []
  for (const s of svcs) keys.push((await s.wait(/^key ([0-9a-f]{64})/))[1])
  for (const s of svcs) await s.wait(/^register/)
  await sleep(1500) // let the announces land

  // A: round-robin
  {
    const p = await startProxy('round-robin')
    const res = await many(3000, 50, () => client(p.port))
    const { counts, errors } = tally(res)
    check(errors === 0, `round-robin: 3,000 connections, ${errors} failed`)
    const ok = Object.keys(counts).length === 3 && Object.values(counts).every((c) => c >= 950 && c <= 1050)
    check(ok, 'round-robin: each instance within 1,000 +- 5 % ' + JSON.stringify(counts))
    await stopProxy(p)
  }

  // B: hash (every client here comes from 127.0.0.1: one instance for all of them)
  {
    const p = await startProxy('hash')
    const res = await many(100, 10, () => client(p.port))
    const { counts, errors } = tally(res)
    check(errors === 0 && Object.keys(counts).length === 1, 'hash: one client address stays on one instance ' + JSON.stringify(counts))
    await stopProxy(p)
  }

  // C: a slow instance (50 ms before each READY) gets less from p2c and least-conn
  {
    svcs[2].proc.kill('SIGTERM')
    await svcs[2].exited
    svcs[2] = startService(2, backs[2], seeds[2], ['--delay', '50'])
    await svcs[2].wait(/^register/)
    await sleep(300)
    for (const policy of ['p2c', 'least-conn']) {
      const p = await startProxy(policy)
      const res = await many(600, 12, () => client(p.port))
      const { counts, errors } = tally(res)
      const slow = (counts.inst2 || 0) / 600
      check(errors === 0 && slow < 0.2, `${policy}: the instance 50 ms slower gets ${(slow * 100).toFixed(1)} % (< 20 %) ${JSON.stringify(counts)}`)
      await stopProxy(p)
    }
    svcs[2].proc.kill('SIGTERM')
    await svcs[2].exited
    svcs[2] = startService(2, backs[2], seeds[2])
    await svcs[2].wait(/^register/)
    await sleep(300)
  }

  // D: kill -9 under 200 open connections
  {
    const p = await startProxy('p2c')
    const held = await Promise.all(Array.from({ length: 200 }, () => heldClient(p.port)))
    const on1 = held.filter((h) => h.id === 'inst1')
    check(on1.length > 20, `200 open connections, ${on1.length} on the instance to kill`)
    const killedAt = Date.now()
    svcs[1].proc.kill('SIGKILL')
    await Promise.all(on1.map((h) => h.closed))
    const detect = Math.max(...on1.map((h) => h.closedAt())) - killedAt
    console.log(`# kill -9: every connection on the dead instance closed after ${detect} ms`)
    check(detect < 2000, `dead sessions detected in ${detect} ms (session liveness 900 ms + tick)`)
    const res = await many(200, 50, () => client(p.port))
    const { counts, errors } = tally(res)
    check(errors === 0, `200 new connections after detection: ${errors} failed`)
    check(!counts.inst1, 'the killed instance is not chosen ' + JSON.stringify(counts))
    const others = held.filter((h) => h.id !== 'inst1')
    const replies = await Promise.all(others.map((h) => h.release('bye')))
    check(replies.every((r) => r.includes('got 3 ')), `the ${others.length} connections on the other instances were not disturbed`)
    // It comes back with the same key: probed, then chosen again.
    svcs[1] = startService(1, backs[1], seeds[1])
    await svcs[1].wait(/^register/)
    let back = false
    const t0 = Date.now()
    while (!back && Date.now() - t0 < 20000) {
      const r = await many(30, 10, () => client(p.port))
      back = r.some((x) => x.id === 'inst1')
      if (!back) await sleep(250)
    }
    check(back, `the instance is chosen again once it returns (${Date.now() - t0} ms after it registered)`)
    await stopProxy(p)
  }

  // E: health checks
  {
    const p = await startProxy('round-robin')
    const stoppedAt = Date.now()
    const port0 = backs[0].port
    await backs[0].close()
    await svcs[0].wait(/^deregister/, 10000)
    const took = Date.now() - stoppedAt
    check(took <= 3 * INTERVAL + 1500, `backend stopped: deregistered after ${took} ms (checks every ${INTERVAL} ms, 3 failures)`)
    const res = await many(30, 10, () => client(p.port))
    const { counts, errors } = tally(res)
    check(errors === 0 && !counts.inst0, 'connections go to the healthy instances ' + JSON.stringify(counts))
    backs[0] = await backend('inst0', port0)
    await svcs[0].wait(/^register/, 10000)
    check(true, 'backend started again: registered again')
    await sleep(200)
    const res2 = await many(30, 10, () => client(p.port))
    check(tally(res2).counts.inst0 > 0, 'and chosen again ' + JSON.stringify(tally(res2).counts))
    await stopProxy(p)
  }

  // F: drain during a 50 MiB upload
  {
    const p = await startProxy('round-robin')
    const h = await heldClient(p.port)
    const idx = Number(h.id.slice(4))
    const big = crypto.randomBytes(50 * 1024 * 1024)
    const sum = crypto.createHash('sha256').update(big).digest('hex')
    const done = h.release(big)
    await sleep(200)
    svcs[idx].proc.kill('SIGTERM')
    await svcs[idx].waitErr(/service: draining/) // connections accepted before that are served
    const res = await many(30, 10, () => client(p.port))
    const { counts, errors } = tally(res)
    check(errors === 0 && !counts[h.id], `during the drain new connections go elsewhere ${JSON.stringify(counts)}`)
    const reply = await done
    check(reply.includes(`got ${big.length} ${sum}`), 'the 50 MiB upload completed through the drain, checksum matches')
    await svcs[idx].wait(/^drained/, 60000)
    check(await svcs[idx].exited === 0, 'the drained service exits 0')
    await stopProxy(p)
  }

  // G: waiting for a first instance
  {
    for (const k of [...registered.keys()]) registered.delete(k)
    const p = await startProxy('p2c')
    const pending = client(p.port, { payload: 'late' })
    await sleep(2000)
    const b3 = await backend('inst3')
    const s3 = startService(3, b3, crypto.randomBytes(32).toString('hex'))
    await s3.wait(/^register/)
    const r = await pending.catch((e) => ({ error: e.message }))
    check(r.id === 'inst3' && r.reply.startsWith('got 4 '), `a client that came first is served once an instance registers (${r.ms} ms)`)
    await stopProxy(p)
    registered.clear()
    const q = await startProxy('p2c', ['--wait', '1000'])
    const t0 = Date.now()
    const r2 = await client(q.port).catch((e) => ({ error: e.message }))
    const waited = Date.now() - t0
    check(r2.error && waited >= 900, `without an instance the connection is closed after --wait (${waited} ms)`)
    await sleep(100)
    check(/no healthy instance of test@1 within 1000 ms/.test(q.err()), 'with a clear log line')
    await stopProxy(q)
    s3.proc.kill('SIGTERM')
    await s3.exited
    await b3.close()
  }

  for (const s of svcs) s.proc.kill('SIGTERM')
  await Promise.all(svcs.map((s) => s.exited))
  for (const b of backs) await b.close()
  dht.stop()
  if (failures()) { console.error(`${failures()} checks failed`); process.exit(1) }
  console.log('dataplane_e2e: all checks passed')
}
main().catch((err) => { console.error(err); process.exit(1) })
