// Shared helpers for the data-plane end-to-end tests (not a test itself): a loopback DHT of
// `hyperseaport dht-node`s, TCP backends that say who they are, line-driven processes,
// clients.
const { spawn } = require('child_process')
const net = require('net')
const crypto = require('crypto')

const HOST = '127.0.0.1'
let failures = 0
function check (cond, msg) {
  if (cond) console.log('ok   ' + msg)
  else { failures++; console.log('FAIL ' + msg) }
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// A child process whose stdout is read line by line; stderr is kept (and echoed with
// DP_VERBOSE=1).
function run (bin, args, name, onLine = null) {
  const proc = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'] })
  const lines = []
  const waiters = []
  let buf = ''
  let err = ''
  proc.stdout.on('data', (d) => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) !== -1) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      if (onLine) onLine(line)
      lines.push(line)
      for (const w of waiters.slice()) {
        const m = line.match(w.re)
        if (m) { waiters.splice(waiters.indexOf(w), 1); clearTimeout(w.timer); lines.splice(lines.indexOf(line), 1); w.resolve(m) }
      }
    }
  })
  proc.stderr.on('data', (d) => { err += d; if (process.env.DP_VERBOSE) process.stderr.write(`[${name}] ${d}`) })
  proc.stdin.on('error', () => {})
  const exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve(code === null ? sig : code)))
  return {
    proc,
    name,
    exited,
    err: () => err,
    send (line) { proc.stdin.write(line + '\n') },
    async waitErr (re, ms = 30000) {
      const t0 = Date.now()
      while (!re.test(err)) {
        if (Date.now() - t0 > ms) throw new Error(`${name}: timeout waiting for ${re} on stderr`)
        await sleep(20)
      }
    },
    wait (re, ms = 30000) {
      const found = lines.find((l) => re.test(l))
      if (found) { lines.splice(lines.indexOf(found), 1); return Promise.resolve(found.match(re)) }
      return new Promise((resolve, reject) => {
        const w = { re, resolve, timer: setTimeout(() => { waiters.splice(waiters.indexOf(w), 1); reject(new Error(`${name}: timeout waiting for ${re}; stderr: ${err.slice(-800)}`)) }, ms) }
        waiters.push(w)
      })
    },
    async ask (line, re, ms) { this.send(line); return this.wait(re, ms) }
  }
}

async function dhtNet (hsp, n = 3) {
  const nodes = [run(hsp, ['dht-node', '--host', HOST, '--bootstrap', ''], 'dht0')]
  const m = await nodes[0].wait(/listening [\d.]+:(\d+)/)
  const boot = `${HOST}:${m[1]}`
  for (let i = 1; i < n; i++) nodes.push(run(hsp, ['dht-node', '--host', HOST, '--bootstrap', boot], 'dht' + i))
  for (const node of nodes) await node.wait(/ready persistent/)
  return { boot, nodes, stop () { for (const node of nodes) node.proc.kill('SIGTERM') } }
}

// A TCP backend: on connect it writes "<id>\n", then echoes (or, for 'sink', counts bytes
// and answers with the count and a sha256 once the client ends).
function backend (id, port = 0, { hash = true } = {}) {
  const conns = new Set()
  const server = net.createServer((sock) => {
    conns.add(sock)
    sock.on('close', () => conns.delete(sock))
    sock.on('error', () => {})
    sock.write(id + '\n')
    const h = crypto.createHash('sha256')
    let n = 0
    sock.on('data', (d) => {
      if (hash) h.update(d)
      n += d.length
    })
    sock.on('end', () => { sock.end(`got ${n} ${hash ? h.digest('hex') : '-'}\n`) })
  })
  return new Promise((resolve) => server.listen(port, HOST, () => {
    resolve({
      id,
      port: server.address().port,
      server,
      conns,
      close () { for (const c of conns) c.destroy(); return new Promise((resolve) => server.close(resolve)) }
    })
  }))
}

// One client connection through the proxy: reads the instance id line, optionally sends
// `payload`, ends, and resolves with { id, reply, ms } or rejects.
function client (port, { payload = null, hold = 0, timeout = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now()
    const sock = net.connect(port, HOST)
    let data = ''
    let id = null
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('client timeout')) }, timeout)
    sock.on('data', (d) => {
      data += d
      if (id === null && data.includes('\n')) {
        id = data.slice(0, data.indexOf('\n'))
        const go = () => { if (payload) sock.write(payload); sock.end() }
        if (hold) setTimeout(go, hold)
        else go()
      }
    })
    sock.on('error', (e) => { clearTimeout(timer); reject(e) })
    sock.on('close', () => {
      clearTimeout(timer)
      if (id === null) reject(new Error('closed before the instance answered'))
      else resolve({ id, reply: data.slice(id.length + 1), ms: Date.now() - t0 })
    })
  })
}

// Runs `n` clients with at most `par` at a time.
async function many (n, par, fn) {
  const results = []
  let next = 0
  async function worker () {
    while (next < n) {
      const i = next++
      try { results[i] = await fn(i) } catch (e) { results[i] = { error: e.message } }
    }
  }
  await Promise.all(Array.from({ length: par }, worker))
  return results
}

module.exports = { HOST, check, sleep, run, dhtNet, backend, client, many, failures: () => failures }
