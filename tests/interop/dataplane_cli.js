// Data plane through the real binary: `hyperseaport registry`, three `service`s of one role
// and `proxy`s, on a loopback DHT; instance changes reach the proxies by the registry's WATCH.
//   round-robin spread; kill -9 of an instance under open connections (no new connection
//   fails, it is not chosen, the registry's expiry removes it); health checks (tcp and
//   http:/path) deregister and register again; SIGTERM drains during a 50 MiB upload;
//   a proxy started before any instance holds its client until one registers.
// Usage: node dataplane_cli.js <hyperseaport>
const crypto = require('crypto')
const http = require('http')
const os = require('os')
const path = require('path')
const fs = require('fs')
const { HOST, check, sleep, run, dhtNet, backend, client, many, failures } = require('./dataplane_lib')

const hsp = process.argv[2]
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hsp-dp-'))
process.env.HOME = tmp
process.env.XDG_CONFIG_HOME = ''
process.env.XDG_DATA_HOME = ''

let dht, key, net
function service (name, port, role, extra = []) {
  return run(hsp, ['service', '--port', String(port), '--role', role, '--registryPublicKey', key, ...net, ...extra], name)
}
async function proxy (name, role, extra = []) {
  const port = await freePort()
  const p = run(hsp, ['proxy', '--port', String(port), '--role', role, '--registryPublicKey', key, ...net,
    '--storage', path.join(tmp, name), ...extra], name)
  p.port = port
  await p.wait(/^connected to registry/, 60000)
  return p
}
function freePort () {
  return new Promise((resolve) => {
    const s = require('net').createServer().listen(0, HOST, () => { const port = s.address().port; s.close(() => resolve(port)) })
  })
}
function tally (res) {
  const counts = {}
  let errors = 0
  for (const x of res) { if (x.error) errors++; else counts[x.id] = (counts[x.id] || 0) + 1 }
  return { counts, errors }
}
function held (port) {
  return new Promise((resolve, reject) => {
    const sock = require('net').connect(port, HOST)
    let data = ''
    const closed = new Promise((resolve) => sock.on('close', resolve))
    sock.on('error', () => {})
    sock.on('data', (d) => {
      data += d
      if (data.includes('\n') && !sock.got) {
        sock.got = true
        resolve({ id: data.slice(0, data.indexOf('\n')), closed, release (payload) { sock.end(payload); return closed.then(() => data) } })
      }
    })
    setTimeout(() => reject(new Error('held client timeout')), 30000)
  })
}
async function stop (p) {
  p.proc.kill('SIGTERM')
  return p.exited
}

async function main () {
  dht = await dhtNet(hsp)
  net = ['--bootstrap', dht.boot, '--bind', HOST]
  const seed = crypto.randomBytes(32).toString('hex')
  const reg = run(hsp, ['registry', '--registrySeed', seed, '--storage', path.join(tmp, 'store'), ...net], 'registry')
  key = (await reg.wait(/^registryPublicKey=([0-9a-f]{64})/, 60000))[1]

  const backs = await Promise.all([0, 1, 2].map((i) => backend('inst' + i)))
  const svcs = backs.map((b, i) => service('svc' + i, b.port, 'web@1.0.0', ['--check-interval', '300ms', '--ttl', '3']))
  for (const s of svcs) await s.wait(/^registered service/, 60000)
  await sleep(1000) // announces
  // Round-robin through the real proxy; the registry's WATCH delivered the three.
  const rr = await proxy('rr', 'web@1.x', ['--balance', 'round-robin'])
  await sleep(500)
  {
    const res = await many(600, 30, () => client(rr.port))
    const { counts, errors } = tally(res)
    check(errors === 0 && Object.keys(counts).length === 3 && Object.values(counts).every((c) => c >= 190 && c <= 210),
      `round-robin through the registry: ${JSON.stringify(counts)}, ${errors} failed`)
  }

  // A plain HyperDHT connection (the HTTP gateway's kind, or `pipe KEY`) is still piped as is.
  {
    const svcKey = (await svcs[2].wait(/^started p2p service on ([0-9a-f]{64})/))[1]
    const pipe = run(hsp, ['pipe', svcKey, '--bootstrap', dht.boot, '--host', HOST], 'pipe')
    pipe.proc.stdin.end('hello')
    const line = await pipe.wait(/^got 5 /, 30000).catch(() => null)
    check(line !== null, 'a plain connection to the service reaches the backend')
    await pipe.exited
  }

  // kill -9 under 90 open connections
  {
    const hs = await Promise.all(Array.from({ length: 90 }, () => held(rr.port)))
    const on1 = hs.filter((h) => h.id === 'inst1')
    const t0 = Date.now()
    svcs[1].proc.kill('SIGKILL')
    await Promise.all(on1.map((h) => h.closed))
    console.log(`# kill -9: connections on the dead instance closed after ${Date.now() - t0} ms`)
    const res = await many(150, 30, () => client(rr.port))
    const { counts, errors } = tally(res)
    check(errors === 0 && !counts.inst1, `after kill -9: 150 new connections, ${errors} failed, none to the dead one ${JSON.stringify(counts)}`)
    await Promise.all(hs.filter((h) => h.id !== 'inst1').map((h) => h.release('x')))
    await reg.wait(/^expired /, 15000)
    check(true, 'the registry expired the killed instance (TTL 3 s)')
  }

  // tcp health check: the backend stops -> deregistered; starts -> registered again
  {
    const port0 = backs[0].port
    const t0 = Date.now()
    await backs[0].close()
    await svcs[0].wait(/^deregistered service .* \(unhealthy\)/, 10000)
    check(true, `backend stopped: the service deregistered after ${Date.now() - t0} ms (3 checks 300 ms apart)`)
    await sleep(300)
    const res = await many(30, 10, () => client(rr.port))
    check(tally(res).errors === 0 && !tally(res).counts.inst0, 'the proxy no longer uses it ' + JSON.stringify(tally(res).counts))
    backs[0] = await backend('inst0', port0)
    await svcs[0].wait(/^registered service/, 10000)
    await sleep(500)
    const res2 = await many(30, 10, () => client(rr.port))
    check(tally(res2).counts.inst0 > 0, 'backend back: registered again and used ' + JSON.stringify(tally(res2).counts))
  }

  // http:/path health check
  {
    let status = 200
    const web = http.createServer((req, res) => { res.writeHead(req.url === '/healthz' ? status : 404); res.end('x') })
    await new Promise((resolve) => web.listen(0, HOST, resolve))
    const s = service('svchttp', web.address().port, 'api@2.0.0', ['--check', 'http:/healthz', '--check-interval', '300ms'])
    await s.wait(/^registered service/, 60000)
    status = 503
    await s.wait(/^deregistered service .* \(unhealthy\)/, 10000)
    check(true, 'http:/healthz answering 503: deregistered')
    status = 200
    await s.wait(/^registered service/, 10000)
    check(true, 'http:/healthz answering 200 again: registered again')
    check(await stop(s) === 0, 'the service exits 0 on SIGTERM')
    web.close()
  }

  // drain during a 50 MiB upload
  {
    const h = await held(rr.port)
    const idx = Number(h.id.slice(4))
    const big = crypto.randomBytes(50 * 1024 * 1024)
    const sum = crypto.createHash('sha256').update(big).digest('hex')
    const done = h.release(big)
    await sleep(200)
    svcs[idx].proc.kill('SIGTERM')
    await svcs[idx].waitErr(/draining/)
    const res = await many(30, 10, () => client(rr.port))
    const { counts, errors } = tally(res)
    check(errors === 0 && !counts[h.id], `draining ${h.id}: new connections go elsewhere ${JSON.stringify(counts)}`)
    const reply = await done
    check(reply.includes(`got ${big.length} ${sum}`), 'the 50 MiB upload completed through the drain')
    check(await svcs[idx].exited === 0, 'the drained service exits 0')
  }

  // a proxy before any instance
  {
    const p = await proxy('early', 'late@1.x')
    const pending = client(p.port, { payload: 'hi' })
    await sleep(2000)
    const b = await backend('late')
    const s = service('svclate', b.port, 'late@1.0.0')
    const r = await pending.catch((e) => ({ error: e.message }))
    check(r.id === 'late' && r.reply.startsWith('got 2 '), `the client waited for the first instance and was served (${r.ms} ms)`)
    check(await stop(p) === 0, 'proxy exits 0')
    await stop(s)
    await b.close()
  }

  check(await stop(rr) === 0, 'proxy exits 0 on SIGTERM')
  for (const s of svcs) if (s.proc.exitCode === null && s.proc.signalCode === null) await stop(s)
  check(await stop(reg) === 0, 'registry exits 0')
  for (const b of backs) await b.close()
  dht.stop()
  fs.rmSync(tmp, { recursive: true, force: true })
  if (failures()) { console.error(`${failures()} checks failed`); process.exit(1) }
  console.log('dataplane_cli: all checks passed')
}
main().catch((err) => { console.error(err); process.exit(1) })
