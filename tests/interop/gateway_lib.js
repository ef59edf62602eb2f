// Shared pieces of the gateway tests: the gateway process (gateway_tool over a static
// upstream), a backend HTTP service, a raw HTTP/1.1 response reader for exact
// keep-alive/pipelining checks, and a minimal WebSocket frame codec. Loopback only.
'use strict'
const { spawn } = require('child_process')
const http = require('http')
const net = require('net')
const crypto = require('crypto')
const fs = require('fs')

let passed = 0
let failed = 0
function check (cond, what) {
  if (cond) passed++
  else {
    failed++
    console.error('FAIL: ' + what)
  }
}
function summary (name) {
  console.log(`${name}: ${passed} passed, ${failed} failed`)
  return failed === 0
}

// A sanitizer build keeps freed memory in quarantine (256 MiB by default), which would be
// counted as the gateway's RSS; a small quarantine keeps RSS about what the code holds.
function toolEnv () {
  const env = { ...process.env }
  const extra = 'quarantine_size_mb=8:detect_leaks=1'
  env.ASAN_OPTIONS = env.ASAN_OPTIONS ? env.ASAN_OPTIONS + ':' + extra : extra
  return env
}

// Starts gateway_tool; resolves with { port, pid, cmd(line) -> Promise<reply>, stop() }.
function startGateway (tool, args = []) {
  return new Promise((resolve, reject) => {
    const p = spawn(tool, args, { stdio: ['pipe', 'pipe', 'inherit'], env: toolEnv() })
    let buf = ''
    const waiters = []
    let port = 0
    p.on('error', reject)
    p.stdout.on('data', (d) => {
      buf += d
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        const m = /^listening (\d+)$/.exec(line)
        if (m && !port) {
          port = Number(m[1])
          resolve(gw)
        } else if (waiters.length) waiters.shift()(line)
      }
    })
    const exited = new Promise((res) => p.on('exit', (code, sig) => res({ code, sig })))
    const gw = {
      get port () { return port },
      pid: p.pid,
      proc: p,
      exited,
      cmd (line) {
        return new Promise((res) => {
          waiters.push(res)
          p.stdin.write(line + '\n')
        })
      },
      async stop () {
        await gw.cmd('quit')
        p.stdin.end()
        return exited
      }
    }
  })
}

function rssKiB (pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) : 0
  } catch { return 0 }
}

// Deterministic body bytes: a 64 KiB block repeated.
const BLOCK = crypto.createHash('sha512').update('hyperseaport').digest()
const PATTERN = Buffer.alloc(64 * 1024)
for (let i = 0; i < PATTERN.length; i++) PATTERN[i] = BLOCK[i % 64] ^ (i >> 6)
function patternHash (n) {
  const h = crypto.createHash('sha256')
  while (n > 0) {
    const k = Math.min(n, PATTERN.length)
    h.update(k === PATTERN.length ? PATTERN : PATTERN.subarray(0, k))
    n -= k
  }
  return h.digest('hex')
}
// Writes n pattern bytes to a writable, respecting back-pressure.
function writePattern (w, n, done) {
  function more () {
    while (n > 0) {
      const k = Math.min(n, PATTERN.length)
      n -= k
      if (!w.write(k === PATTERN.length ? PATTERN : PATTERN.subarray(0, k))) {
        w.once('drain', more)
        return
      }
    }
    done()
  }
  more()
}

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
function wsAccept (key) { return crypto.createHash('sha1').update(key + WS_GUID).digest('base64') }

// One frame: { fin, op, payload }; client frames are masked.
function wsFrame (op, payload, mask) {
  const len = payload.length
  let head
  if (len < 126) head = Buffer.from([0x80 | op, (mask ? 0x80 : 0) | len])
  else if (len < 65536) {
    head = Buffer.alloc(4)
    head[0] = 0x80 | op
    head[1] = (mask ? 0x80 : 0) | 126
    head.writeUInt16BE(len, 2)
  } else {
    head = Buffer.alloc(10)
    head[0] = 0x80 | op
    head[1] = (mask ? 0x80 : 0) | 127
    head.writeBigUInt64BE(BigInt(len), 2)
  }
  if (!mask) return Buffer.concat([head, payload])
  const key = crypto.randomBytes(4)
  const body = Buffer.from(payload)
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3]
  return Buffer.concat([head, key, body])
}
// Parses whole frames off the front of buf: returns { frames, rest }.
function wsParse (buf) {
  const frames = []
  for (;;) {
    if (buf.length < 2) break
    let len = buf[1] & 0x7f
    let off = 2
    if (len === 126) {
      if (buf.length < 4) break
      len = buf.readUInt16BE(2)
      off = 4
    } else if (len === 127) {
      if (buf.length < 10) break
      len = Number(buf.readBigUInt64BE(2))
      off = 10
    }
    const masked = buf[1] & 0x80
    const key = masked ? buf.subarray(off, off + 4) : null
    if (masked) off += 4
    if (buf.length < off + len) break
    const payload = Buffer.from(buf.subarray(off, off + len))
    if (key) for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3]
    frames.push({ fin: !!(buf[0] & 0x80), op: buf[0] & 0x0f, payload })
    buf = buf.subarray(off + len)
  }
  return { frames, rest: buf }
}

// The backend: a keep-alive HTTP service named `id`.
function startBackend (id) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x')
    const parts = url.pathname.split('/')
    if (url.pathname === '/hello' || url.pathname === '/') {
      const body = JSON.stringify({ id, method: req.method, url: req.url, headers: req.headers })
      res.writeHead(200, { 'content-type': 'application/json', 'x-backend': id })
      res.end(body)
    } else if (url.pathname === '/id') {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-backend': id })
      res.end(id + ' ' + (url.searchParams.get('n') || ''))
    } else if (parts[1] === 'size' || parts[1] === 'chunked') {
      const n = Number(parts[2])
      const headers = { 'content-type': 'application/octet-stream', 'x-backend': id }
      if (parts[1] === 'size') headers['content-length'] = n
      res.writeHead(200, headers)
      writePattern(res, n, () => res.end())
    } else if (url.pathname === '/abort') {
      // A response cut short: head and 10 of the 1000 bytes promised, then a reset.
      res.writeHead(200, { 'content-length': 1000 })
      res.write(Buffer.alloc(10, 97))
      setTimeout(() => req.socket.destroy(), 50)
    } else if (url.pathname === '/count' || url.pathname === '/echo') {
      if (url.pathname === '/echo') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-backend': id })
        req.pipe(res)
        return
      }
      const h = crypto.createHash('sha256')
      let bytes = 0
      req.on('data', (d) => { bytes += d.length; h.update(d) })
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json', 'x-backend': id })
        res.end(JSON.stringify({ bytes, sha256: h.digest('hex'), te: req.headers['transfer-encoding'] || null }))
      })
    } else {
      res.writeHead(404)
      res.end('backend: no such path\n')
    }
  })
  server.keepAliveTimeout = 30000
  server.on('upgrade', (req, socket, head) => {
    if ((req.headers.upgrade || '').toLowerCase() !== 'websocket') {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n')
      return
    }
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Accept: ' + wsAccept(req.headers['sec-websocket-key']) + '\r\n\r\n')
    let buf = head
    socket.on('data', (d) => {
      buf = Buffer.concat([buf, d])
      const { frames, rest } = wsParse(buf)
      buf = rest
      for (const f of frames) {
        if (f.op === 8) {
          socket.end(wsFrame(8, f.payload, false))
          return
        }
        socket.write(wsFrame(f.op, f.payload, false)) // echo
      }
    })
    socket.on('error', () => {})
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: server.address().port, id })))
}

// A raw connection with a buffered reader of HTTP/1.1 responses.
function connect (port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1')
    const c = { sock: s, buf: Buffer.alloc(0), waiters: [], ended: false }
    s.on('data', (d) => {
      c.buf = Buffer.concat([c.buf, d])
      wake(c)
    })
    s.on('end', () => { c.ended = true; wake(c) })
    s.on('close', () => { c.ended = true; wake(c) })
    s.on('error', () => { c.ended = true; wake(c) })
    s.on('connect', () => resolve(c))
    s.once('error', reject)
  })
}
function wake (c) {
  const w = c.waiters
  c.waiters = []
  for (const f of w) f()
}
function waitData (c, timeoutMs = 10000) {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), timeoutMs)
    c.waiters.push(() => { clearTimeout(t); resolve(true) })
  })
}
// Reads one response; resolves { status, headers, body } or null on close/timeout.
async function readResponse (c, opts = {}) {
  for (;;) {
    const r = tryParse(c.buf, opts)
    if (r) {
      c.buf = c.buf.subarray(r.used)
      return r.res
    }
    if (c.ended && !opts.eof) return null
    if (c.ended && opts.eof) {
      const i = c.buf.indexOf('\r\n\r\n')
      if (i < 0) return null
      const res = parseHead(c.buf.subarray(0, i).toString('latin1'))
      res.body = c.buf.subarray(i + 4)
      c.buf = Buffer.alloc(0)
      return res
    }
    if (!(await waitData(c, opts.timeout || 10000))) return null
  }
}
function parseHead (text) {
  const lines = text.split('\r\n')
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0])
  const headers = {}
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':')
    const k = l.slice(0, i).trim().toLowerCase()
    const v = l.slice(i + 1).trim()
    headers[k] = headers[k] !== undefined ? headers[k] + ', ' + v : v
  }
  return { status: m ? Number(m[1]) : 0, headers, statusLine: lines[0] }
}
function tryParse (buf, opts) {
  const i = buf.indexOf('\r\n\r\n')
  if (i < 0) return null
  const res = parseHead(buf.subarray(0, i).toString('latin1'))
  let pos = i + 4
  if (opts.head || res.status === 101 || res.status === 204 || res.status === 304 || res.status < 200) {
    res.body = Buffer.alloc(0)
    return { res, used: pos }
  }
  if (res.headers['transfer-encoding'] && /chunked$/i.test(res.headers['transfer-encoding'])) {
    const parts = []
    for (;;) {
      const e = buf.indexOf('\r\n', pos)
      if (e < 0) return null
      const size = parseInt(buf.subarray(pos, e).toString('latin1'), 16)
      pos = e + 2
      if (size === 0) {
        const t = buf.indexOf('\r\n', pos)
        if (t < 0) return null
        pos = t + 2
        break
      }
      if (buf.length < pos + size + 2) return null
      parts.push(buf.subarray(pos, pos + size))
      pos += size + 2
    }
    res.body = Buffer.concat(parts)
    res.chunked = true
    return { res, used: pos }
  }
  if (res.headers['content-length'] !== undefined) {
    const n = Number(res.headers['content-length'])
    if (buf.length < pos + n) return null
    res.body = Buffer.from(buf.subarray(pos, pos + n))
    return { res, used: pos + n }
  }
  return null // until close: the caller passes opts.eof
}
function waitClosed (c, timeoutMs) {
  return new Promise((resolve) => {
    if (c.ended) return resolve(true)
    const t = setTimeout(() => resolve(false), timeoutMs)
    c.sock.once('close', () => { clearTimeout(t); resolve(true) })
  })
}

// A request through node's http client; resolves { status, headers, body (Buffer) }.
function request (port, method, path, body, headers = {}, agent = false) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent }, (res) => {
      const parts = []
      res.on('data', (d) => parts.push(d))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    if (body) req.end(body)
    else req.end()
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
function hexKey (n) { return crypto.createHash('sha256').update('instance ' + n).digest('hex') }

module.exports = {
  check, summary, startGateway, startBackend, connect, readResponse, waitClosed, waitData,
  request, rssKiB, patternHash, writePattern, PATTERN, wsFrame, wsParse, wsAccept, sleep,
  hexKey, toolEnv
}
