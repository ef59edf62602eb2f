// The registry over HyperDHT from Node (hyperdht + compact-encoding + sodium-native only),
// against the real C binary on a JS testnet: a JS peer connects to the C registry by its
// public key, registers a JS hyperdht server as an instance (length-prefixed frames,
// signed REGISTER), the C `ls` lists it and a C `proxy` follows it; a JS WATCH receives the
// change log and its hash chain and signatures verify; a JS consumer finds a C `service`
// with a QUERY and gets an HTTP answer from it over a plain hyperdht connection.
// The JS DHT is firewalled: false (docs/testing.md loopback trap).
// Usage: node registry_net.js <hyperseaport> <http_hello>
'use strict'
const HyperDHT = require('hyperdht')
const createTestnet = require('hyperdht/testnet')
const { spawn } = require('child_process')
const net = require('net')
const os = require('os')
const fs = require('fs')
const path = require('path')
const c = require('compact-encoding')
const sodium = require('sodium-native')
const b4a = require('b4a')

const bin = process.argv[2]
const hello = process.argv[3]
const HOST = '127.0.0.1'
let failures = 0
function check (cond, msg) {
  if (cond) console.log('ok   ' + msg)
  else { failures++; console.log('FAIL ' + msg) }
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function enc (parts) {
  const st = { start: 0, end: 0, buffer: null }
  for (const [k, v] of parts) k.preencode(st, v)
  st.buffer = Buffer.alloc(st.end)
  for (const [k, v] of parts) k.encode(st, v)
  return st.buffer
}
const frame = (msg) => { const h = Buffer.alloc(4); h.writeUInt32LE(msg.length); return Buffer.concat([h, msg]) }

// A framed message reader on a hyperdht stream: next(id) resolves with the next message
// carrying that request id (watch pushes carry the WATCH's id), leaving the others queued.
function reader (stream) {
  let buf = Buffer.alloc(0)
  const waiting = []
  const ready = []
  const idOf = (msg) => header(msg).id
  const deliver = () => {
    for (let w = 0; w < waiting.length; w++) {
      const i = ready.findIndex((m) => idOf(m) === waiting[w].id)
      if (i === -1) continue
      const [m] = ready.splice(i, 1)
      waiting.splice(w--, 1)[0].resolve(m)
    }
  }
  stream.on('data', (d) => {
    buf = Buffer.concat([buf, d])
    while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32LE(0)) {
      const n = buf.readUInt32LE(0)
      ready.push(buf.subarray(4, 4 + n))
      buf = buf.subarray(4 + n)
    }
    deliver()
  })
  return (id) => new Promise((resolve) => { waiting.push({ id, resolve }); deliver() })
}
function header (msg) {
  const st = { start: 0, end: msg.length, buffer: msg }
  return { st, version: c.uint8.decode(st), id: c.uint.decode(st), type: c.uint8.decode(st) }
}

// Asynchronous: the JS testnet lives in this process and must keep answering meanwhile.
function run (args, opts = {}) {
  return new Promise((resolve) => {
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
    let out = ''; let err = ''
    p.stdout.on('data', (d) => { out += d })
    p.stderr.on('data', (d) => { err += d })
    const timer = setTimeout(() => p.kill('SIGKILL'), 60000)
    p.on('exit', (code) => { clearTimeout(timer); resolve({ code, out, err }) })
  })
}
function startProc (args, env) {
  const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
  p.text = ''
  p.exited = new Promise((resolve) => p.on('exit', (code) => resolve(code)))
  p.stdout.on('data', (d) => { p.text += d })
  p.stderr.on('data', (d) => { p.text += d })
  p.waitFor = async (re, ms = 60000) => {
    for (let t = 0; t < ms; t += 100) { if (re.test(p.text)) return true; await sleep(100) }
    return false
  }
  return p
}
function freePort () {
  return new Promise((resolve) => {
    const s = net.createServer()
    s.listen(0, HOST, () => { const p = s.address().port; s.close(() => resolve(p)) })
  })
}

async function main () {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hsp-regnet-'))
  const env = { ...process.env, HOME: tmp, XDG_CONFIG_HOME: '', XDG_DATA_HOME: '' }
  const testnet = await createTestnet(5, { host: HOST })
  const bootstrap = testnet.bootstrap.map((b) => `${b.host}:${b.port}`).join(',')
  const netArgs = ['--bootstrap', bootstrap, '--bind', HOST]
  const dht = new HyperDHT({ bootstrap: testnet.bootstrap, host: HOST, firewalled: false })
  await dht.fullyBootstrapped()
  const procs = []
  try {
    const seed = Buffer.alloc(32, 0x42)
    const reg = { pk: Buffer.alloc(32), sk: Buffer.alloc(64) }
    sodium.crypto_sign_seed_keypair(reg.pk, reg.sk, seed)
    const registry = startProc(['registry', '--registrySeed', seed.toString('hex'), '--storage', path.join(tmp, 'store'), ...netArgs], env)
    procs.push(registry)
    check(await registry.waitFor(/registryPublicKey=[0-9a-f]{64}/), 'C registry started on the JS testnet')
    check(registry.text.includes('registryPublicKey=' + reg.pk.toString('hex')), 'its key is the seed\'s')
    await sleep(1000) // let the announce land

    // A JS hyperdht server that answers HTTP, with its own key pair: the instance.
    const inst = HyperDHT.keyPair()
    const server = dht.createServer((conn) => {
      conn.on('error', () => {})
      conn.once('data', () => conn.end('HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nfrom js\n'))
    })
    await server.listen(inst)

    // Register it in the C registry from JS.
    const stream = dht.connect(reg.pk)
    stream.on('error', () => {})
    await new Promise((resolve, reject) => { stream.once('open', resolve); stream.once('error', reject) })
    check(true, 'JS peer connected to the C registry by its public key')
    const next = reader(stream)
    const body = [[c.uint8, 1], [c.fixed32, inst.publicKey], [c.string, 'jsweb'], [c.string, '1.0.0'], [c.string, '{"from":"js"}'], [c.uint, 15000], [c.fixed32, reg.pk], [c.uint, Date.now()]]
    const sig = Buffer.alloc(64)
    sodium.crypto_sign_detached(sig, Buffer.concat([Buffer.from('hsp-registry-req-v1'), enc(body)]), inst.secretKey)
    stream.write(frame(enc([[c.uint8, 1], [c.uint, 7], ...body, [c.fixed64, sig]])))
    const ok = header(await next(7))
    check(ok.type === 64 && ok.id === 7, `REGISTER from JS acknowledged (type ${ok.type})`)

    // WATCH from 0: the log entry of that registration, hash-chained and signed.
    stream.write(frame(enc([[c.uint8, 1], [c.uint, 8], [c.uint8, 6], [c.uint, 0]])))
    const w = header(await next(8))
    check(w.type === 67 && w.id === 8, 'WATCH answered with ENTRIES')
    const head = c.uint.decode(w.st); c.bool.decode(w.st)
    const entries = []
    for (let n = c.uint.decode(w.st); n > 0; n--) entries.push({ body: c.buffer.decode(w.st), sig: c.fixed64.decode(w.st) })
    let hash = Buffer.alloc(32)
    let good = entries.length === head && head >= 1
    for (const e of entries) {
      const h = Buffer.alloc(32)
      sodium.crypto_generichash(h, Buffer.concat([hash, e.body]))
      hash = h
      good = good && sodium.crypto_sign_verify_detached(e.sig, Buffer.concat([Buffer.from('hsp-registry-log-v1'), hash]), reg.pk)
    }
    check(good, `the change log (${entries.length} entries) chains and verifies in JS`)

    const ls = await run(['ls', 'jsweb@1', '--registryPublicKey', reg.pk.toString('hex'), ...netArgs], { env })
    check(ls.code === 0 && ls.out.startsWith('jsweb@1.0.0 ' + inst.publicKey.toString('hex')), `C ls lists the JS registration (${ls.out.trim() || ls.err.trim()})`)

    // A C proxy carries a TCP connection to the JS instance.
    const port = await freePort()
    const proxy = startProc(['proxy', '--port', String(port), '--role', 'jsweb@1.x', '--registryPublicKey', reg.pk.toString('hex'), '--storage', path.join(tmp, 'proxy'), ...netArgs], env)
    procs.push(proxy)
    check(await proxy.waitFor(/proxy from \d+ to p2p service/), 'C proxy found the JS instance')

    // A C service found from JS: QUERY, then a plain hyperdht connection to its key.
    const backend = spawn(hello, ['0', 'from a C service'], { stdio: ['ignore', 'pipe', 'inherit'] })
    procs.push({ kill: (sig) => backend.kill(sig), exited: new Promise((resolve) => backend.on('exit', () => resolve(0))), spawnargs: ['', 'http_hello'], text: '' })
    const hport = await new Promise((resolve) => backend.stdout.once('data', (d) => resolve(String(d).split(' ')[1].trim())))
    const svc = startProc(['service', '--port', hport, '--role', 'cweb@2.1.0', '--registryPublicKey', reg.pk.toString('hex'), ...netArgs], env)
    procs.push(svc)
    check(await svc.waitFor(/registered service/), 'C service registered')
    stream.write(frame(enc([[c.uint8, 1], [c.uint, 10], [c.uint8, 4], [c.string, 'cweb'], [c.string, '2.x'], [c.uint, 0]])))
    const q = header(await next(10))
    let found = null
    if (q.type === 66 && c.uint.decode(q.st) === 1) found = c.fixed32.decode(q.st)
    check(found && svc.text.includes(found.toString('hex')), 'QUERY from JS finds the C service')
    if (found) {
      const conn = dht.connect(found)
      conn.on('error', () => {})
      let data = ''
      conn.on('data', (d) => { data += d })
      conn.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
      await new Promise((resolve) => { conn.on('close', resolve); conn.on('end', resolve); setTimeout(resolve, 20000) })
      check(data.endsWith('from a C service\n'), `HTTP from JS to the C service over hyperdht (${JSON.stringify(data.slice(-20))})`)
      conn.destroy()
    }

    // The push of a later change reaches the JS watcher: deregister (signed by the instance).
    const dbody = [[c.uint8, 3], [c.fixed32, inst.publicKey], [c.fixed32, inst.publicKey], [c.fixed32, reg.pk], [c.uint, Date.now() + 1]]
    const dsig = Buffer.alloc(64)
    sodium.crypto_sign_detached(dsig, Buffer.concat([Buffer.from('hsp-registry-req-v1'), enc(dbody)]), inst.secretKey)
    stream.write(frame(enc([[c.uint8, 1], [c.uint, 9], ...dbody, [c.fixed64, dsig]])))
    const d = header(await next(9))
    check(d.type === 64, `DEREGISTER acknowledged (type ${d.type})`)
    // pushes so far: the C service's registration, then this deregistration (type 3)
    let pushed = false
    for (let i = 0; i < 2 && !pushed; i++) {
      const push = header(await next(8))
      if (push.type !== 67) break
      c.uint.decode(push.st); c.bool.decode(push.st)
      for (let n = c.uint.decode(push.st); n > 0; n--) {
        const body = c.buffer.decode(push.st); c.fixed64.decode(push.st)
        const bst = { start: 0, end: body.length, buffer: body }
        c.uint8.decode(bst); c.uint.decode(bst)
        if (c.uint8.decode(bst) === 3) pushed = true
      }
    }
    check(pushed, 'the deregistration was pushed to the JS watch')
    check(await proxy.waitFor(/no service matches jsweb@1.x/), 'the C proxy saw the deregistration')
    stream.destroy()
    await server.close()
  } finally {
    for (const p of procs) p.kill('SIGTERM')
    for (const p of procs) {
      const code = await Promise.race([p.exited, sleep(15000).then(() => 'timeout')])
      check(code === 0, `${p.spawnargs[1]} exits 0 after SIGTERM (${code})`)
      if (code !== 0) { console.error(p.text); p.kill('SIGKILL') }
    }
    await dht.destroy()
    await testnet.destroy()
    fs.rmSync(tmp, { recursive: true, force: true })
  }
  if (failures) { console.error(`${failures} checks failed`); process.exit(1) }
  console.log('registry_net: all checks passed')
}
main().catch((e) => { console.error(e); process.exit(1) })
