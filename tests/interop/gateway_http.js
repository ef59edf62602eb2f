// The HTTP gateway engine end to end on loopback: gateway_tool (C, static upstream) in front
// of Node backends. Usage: node gateway_http.js GATEWAY_TOOL
'use strict'
const net = require('net')
const crypto = require('crypto')
const http = require('http')
const L = require('./gateway_lib')
const { check } = L

const tool = process.argv[2]
const BIG = 200 * 1024 * 1024
const RSS_LIMIT_KIB = 64 * 1024

async function main () {
  const a = await L.startBackend('A')
  const b = await L.startBackend('B')
  // A port with nothing behind it (for 502/503), a server that accepts and never answers
  // (504), and one that answers with a body delimited by the connection close.
  const deadPort = await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port
      s.close(() => resolve(p))
    })
  })
  const silent = net.createServer((sock) => { sock.on('data', () => {}); sock.on('error', () => {}) })
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve))
  const eofServer = net.createServer((sock) => {
    sock.once('data', () => sock.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n' + 'x'.repeat(5000)))
    sock.on('error', () => {})
  })
  await new Promise((resolve) => eofServer.listen(0, '127.0.0.1', resolve))

  const gw = await L.startGateway(tool, ['--header-timeout', '1000', '--upstream-timeout', '1500',
    '--idle-timeout', '5000', '--fail-ms', '60000'])
  const P = gw.port
  const K = {
    webA: L.hexKey(1), webB: L.hexKey(2), api: L.hexKey(3), dead: L.hexKey(4), mixDead: L.hexKey(5),
    mixA: L.hexKey(6), slow: L.hexKey(7), eof: L.hexKey(8)
  }
  const adds = [
    `add ${K.webA} web 1.2.0 ${a.port} {"zone":"a"}`,
    `add ${K.webB} web 1.3.1 ${b.port} {"zone":"b"}`,
    `add ${K.api} api 2.3.4 ${a.port}`,
    `add ${K.dead} dead 1.0.0 ${deadPort}`,
    `add ${K.mixDead} mixed 1.0.0 ${deadPort}`,
    `add ${K.mixA} mixed 1.0.1 ${a.port}`,
    `add ${K.slow} slow 1.0.0 ${silent.address().port}`,
    `add ${K.eof} eof 1.0.0 ${eofServer.address().port}`
  ]
  for (const line of adds) check((await gw.cmd(line)) === 'ok', line)

  // ---- Routing, forwarding headers -----------------------------------------------------
  let r = await L.request(P, 'GET', '/role/web@1.x/hello?x=1&y=%20z', null, { 'x-forwarded-for': '6.6.6.6' })
  check(r.status === 200, 'role route 200: ' + r.status)
  const seen = JSON.parse(r.body)
  check(seen.url === '/hello?x=1&y=%20z', 'path and query passed on: ' + seen.url)
  check(seen.headers['x-forwarded-for'] === '127.0.0.1', 'X-Forwarded-For replaced by the peer: ' + seen.headers['x-forwarded-for'])
  check(seen.headers['x-forwarded-proto'] === 'http', 'X-Forwarded-Proto http')
  check(seen.headers.host === `127.0.0.1:${P}`, 'Host kept: ' + seen.headers.host)
  check(seen.headers['x-forwarded-host'] === `127.0.0.1:${P}`, 'X-Forwarded-Host set')

  const ids = new Set()
  for (let i = 0; i < 10; i++) {
    r = await L.request(P, 'GET', '/role/web@%5E1.0.0/id')
    check(r.status === 200, 'load balanced request 200')
    ids.add(r.headers['x-backend'])
  }
  check(ids.has('A') && ids.has('B'), 'round robin reaches both instances: ' + [...ids])
  r = await L.request(P, 'GET', '/role/web@%3E%3D1.3.0%20%3C2/id')
  check(r.status === 200 && r.headers['x-backend'] === 'B', 'URL-encoded range ">=1.3.0 <2" picks B')
  r = await L.request(P, 'GET', `/instance/${K.webA}/id?n=7`)
  check(r.status === 200 && r.body.toString() === 'A 7', '/instance/KEY routes to that instance')
  r = await L.request(P, 'GET', '/role/web/id')
  check(r.status === 200, 'role without range means any version')

  r = await L.request(P, 'GET', '/list/web@1.x')
  check(r.status === 200 && /application\/json/.test(r.headers['content-type']), '/list 200 JSON')
  const list = JSON.parse(r.body)
  check(Array.isArray(list) && list.length === 2, '/list has both web instances')
  const first = list[0] || {}
  check(first.id === K.webB && first.role === 'web' && first.version === '1.3.1' &&
    first.tags === '{"zone":"b"}' && first.health === 'healthy' && first.registered > 1.6e12,
  '/list fields, highest version first: ' + JSON.stringify(first))
  r = await L.request(P, 'GET', '/list/web@%3E1.2.0')
  check(r.status === 200 && JSON.parse(r.body).length === 1, '/list with a decoded range')

  // ---- Error routes ----------------------------------------------------------------------
  async function expectError (path, status, what) {
    const e = await L.request(P, 'GET', path)
    let j = {}
    try { j = JSON.parse(e.body) } catch {}
    check(e.status === status && j.status === status && typeof j.error === 'string',
      `${what}: ${path} -> ${e.status} ${e.body.toString().trim()}`)
  }
  await expectError('/role/web@not%20a%20range!/x', 400, 'bad range')
  await expectError('/list/web@%3E%3E%3E', 400, 'bad range in /list')
  await expectError('/role/web@1%zz/x', 400, 'bad escape')
  await expectError('/role/nosuch@1/x', 404, 'no such role')
  await expectError('/role/web@9.x/x', 404, 'no instance in range')
  await expectError(`/instance/${L.hexKey(99)}/x`, 404, 'no such instance')
  await expectError('/instance/1234/x', 400, 'bad instance key')
  await expectError('/nowhere', 404, 'unrouted path')
  await expectError('/role/dead@1/x', 502, 'instance failed')
  await expectError('/role/dead@1/x', 503, 'none healthy (marked failed)')
  await expectError('/role/slow@1/x', 504, 'timeout')
  for (let i = 0; i < 4; i++) {
    r = await L.request(P, 'GET', '/role/mixed@1/id')
    check(r.status === 200 && r.headers['x-backend'] === 'A', 'failover past a dead instance: ' + r.status)
  }
  r = await L.request(P, 'GET', '/list/mixed')
  const mixed = JSON.parse(r.body)
  check(mixed.find((i) => i.id === K.mixDead).health === 'failed' &&
    mixed.find((i) => i.id === K.mixA).health === 'healthy', '/list shows health')

  // ---- Bodies -----------------------------------------------------------------------------
  for (const n of [0, 1024]) {
    r = await L.request(P, 'GET', `/role/api@2/size/${n}`)
    check(r.status === 200 && r.body.length === n &&
      crypto.createHash('sha256').update(r.body).digest('hex') === L.patternHash(n), `GET ${n} B`)
    const up = Buffer.from(L.PATTERN.subarray(0, n))
    r = await L.request(P, 'POST', '/role/api@2/count', up, { 'content-length': n })
    const j = JSON.parse(r.body)
    check(r.status === 200 && j.bytes === n && j.sha256 === L.patternHash(n), `POST ${n} B`)
  }
  // 200 MiB each way, streamed: the gateway's RSS is sampled throughout.
  let maxRss = 0
  const sampler = setInterval(() => { maxRss = Math.max(maxRss, L.rssKiB(gw.pid)) }, 50)
  {
    const h = crypto.createHash('sha256')
    let got = 0
    const status = await new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: P, path: `/role/api@2/size/${BIG}`, agent: false }, (res) => {
        res.on('data', (d) => { got += d.length; h.update(d) })
        res.on('end', () => resolve(res.statusCode))
      }).on('error', reject)
    })
    check(status === 200 && got === BIG && h.digest('hex') === L.patternHash(BIG), `GET 200 MiB: ${got}`)
  }
  {
    const res = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: P, method: 'POST', path: '/role/api@2/count', agent: false, headers: { 'content-length': BIG } }, (res) => {
        const parts = []
        res.on('data', (d) => parts.push(d))
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(parts) }))
      })
      req.on('error', reject)
      L.writePattern(req, BIG, () => req.end())
    })
    const j = JSON.parse(res.body)
    check(res.status === 200 && j.bytes === BIG && j.sha256 === L.patternHash(BIG), 'POST 200 MiB')
  }
  clearInterval(sampler)
  check(maxRss > 0 && maxRss < RSS_LIMIT_KIB, `gateway RSS stayed under 64 MiB while streaming: ${maxRss} KiB`)
  console.log(`gateway max RSS during 200 MiB transfers: ${maxRss} KiB`)

  // Chunked upload (re-chunked upstream) and chunked download.
  {
    const n = 5 * 1024 * 1024 + 77
    const res = await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: P, method: 'POST', path: '/role/api@2/count', agent: false }, (res) => {
        const parts = []
        res.on('data', (d) => parts.push(d))
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(parts) }))
      })
      req.on('error', reject)
      L.writePattern(req, n, () => req.end()) // no length: node sends it chunked
    })
    const j = JSON.parse(res.body)
    check(res.status === 200 && j.bytes === n && j.sha256 === L.patternHash(n) && j.te === 'chunked',
      'chunked upload arrives chunked and whole: ' + res.body)
  }
  {
    const c = await L.connect(P)
    c.sock.write(`GET /role/api@2/chunked/300001 HTTP/1.1\r\nHost: t\r\n\r\n`)
    const res = await L.readResponse(c)
    check(res && res.status === 200 && res.chunked && res.body.length === 300001 &&
      crypto.createHash('sha256').update(res.body).digest('hex') === L.patternHash(300001), 'chunked download')
    // A body delimited by the upstream's close is re-framed chunked: the client connection stays.
    c.sock.write(`GET /role/eof@1/ HTTP/1.1\r\nHost: t\r\n\r\n`)
    const e = await L.readResponse(c)
    check(e && e.status === 200 && e.chunked && e.body.length === 5000, 'close-delimited body re-chunked')
    c.sock.write(`GET /role/api@2/id HTTP/1.1\r\nHost: t\r\n\r\n`)
    const after = await L.readResponse(c)
    check(after && after.status === 200, 'connection kept after a re-chunked body')
    // HEAD: headers only.
    c.sock.write(`HEAD /role/api@2/size/1000 HTTP/1.1\r\nHost: t\r\n\r\n`)
    const hd = await L.readResponse(c, { head: true })
    check(hd && hd.status === 200 && hd.headers['content-length'] === '1000', 'HEAD passes the length, no body')
    c.sock.write(`GET /role/api@2/id?n=h HTTP/1.1\r\nHost: t\r\n\r\n`)
    const afterHead = await L.readResponse(c)
    check(afterHead && afterHead.body.toString() === 'A h', 'in step after HEAD')
    c.sock.destroy()
  }
  // HTTP/1.0 client: no chunked coding, body until close.
  {
    const c = await L.connect(P)
    c.sock.write('GET /role/api@2/chunked/1000 HTTP/1.0\r\n\r\n')
    await L.waitClosed(c, 5000)
    const res = await L.readResponse(c, { eof: true })
    check(res && res.status === 200 && !res.headers['transfer-encoding'] && res.body.length === 1000,
      'HTTP/1.0 client gets an unframed body then close')
  }

  // HTTP/1.0 with keep-alive: told so, and the connection carries a second request.
  {
    const c = await L.connect(P)
    c.sock.write('GET /list/api HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
    const r1 = await L.readResponse(c)
    c.sock.write('GET /list/web HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
    const r2 = await L.readResponse(c)
    check(r1 && r1.status === 200 && /keep-alive/i.test(r1.headers.connection) &&
      r2 && r2.status === 200 && JSON.parse(r2.body).length === 2, 'HTTP/1.0 keep-alive')
    c.sock.destroy()
  }
  // Expect: 100-continue: the instance's interim answer comes through before the body is sent.
  {
    const c = await L.connect(P)
    c.sock.write('POST /role/api@2/count HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n')
    const interim = await L.readResponse(c)
    check(interim && interim.status === 100, '100 Continue passed on: ' + (interim && interim.status))
    c.sock.write('hello')
    const fin = await L.readResponse(c)
    check(fin && fin.status === 200 && JSON.parse(fin.body).bytes === 5, 'body sent after 100 Continue')
    c.sock.destroy()
  }

  // ---- Keep-alive and pipelining -----------------------------------------------------------
  {
    const c = await L.connect(P)
    let ok = 0
    for (let i = 0; i < 100; i++) {
      c.sock.write(`GET /role/web@1/id?n=${i} HTTP/1.1\r\nHost: t\r\n\r\n`)
      const res = await L.readResponse(c)
      if (res && res.status === 200 && res.body.toString().endsWith(' ' + i)) ok++
    }
    check(ok === 100 && !c.ended, `100 keep-alive requests on one connection: ${ok}`)
    // 20 requests in one write, mixed routes (proxied, local, listing), answered in order.
    let batch = ''
    for (let i = 0; i < 20; i++) {
      if (i % 5 === 3) batch += `GET /list/api HTTP/1.1\r\nHost: t\r\n\r\n`
      else if (i % 5 === 4) batch += `GET /role/nosuch/x HTTP/1.1\r\nHost: t\r\n\r\n`
      else batch += `GET /role/web@1/id?n=${i} HTTP/1.1\r\nHost: t\r\n\r\n`
    }
    c.sock.write(batch)
    let inOrder = 0
    for (let i = 0; i < 20; i++) {
      const res = await L.readResponse(c)
      if (!res) break
      if (i % 5 === 3 && res.status === 200 && JSON.parse(res.body).length === 1) inOrder++
      else if (i % 5 === 4 && res.status === 404) inOrder++
      else if (res.status === 200 && res.body.toString().endsWith(' ' + i)) inOrder++
    }
    check(inOrder === 20, `pipelined requests answered in order: ${inOrder}/20`)
    // Pipelined POSTs with bodies.
    let posts = ''
    for (let i = 0; i < 5; i++) posts += `POST /role/api@2/echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nbody${i}`
    c.sock.write(posts)
    let echoed = 0
    for (let i = 0; i < 5; i++) {
      const res = await L.readResponse(c)
      if (res && res.body.toString() === 'body' + i) echoed++
    }
    check(echoed === 5, 'pipelined POST bodies echoed in order')
    // After an instance failure and after a local answer to a request with a body, the
    // connection stays in step.
    check((await gw.cmd(`add ${L.hexKey(50)} dead2 1.0.0 ${deadPort}`)) === 'ok', 'register dead2')
    const big = 'x'.repeat(300000)
    c.sock.write(`GET /role/dead2/x HTTP/1.1\r\nHost: t\r\n\r\n` +
      `POST /nowhere HTTP/1.1\r\nHost: t\r\nContent-Length: ${big.length}\r\n\r\n${big}` +
      `POST /role/dead2/x HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello` +
      `GET /role/api@2/id?n=after HTTP/1.1\r\nHost: t\r\n\r\n`)
    const seq = []
    for (let i = 0; i < 4; i++) {
      const res = await L.readResponse(c)
      seq.push(res ? res.status + (res.status === 200 ? ':' + res.body : '') : 'none')
    }
    check(seq.join(' ') === '502 404 503 200:A after', 'in step after failures and discarded bodies: ' + seq.join(' '))
    c.sock.destroy()
  }

  // ---- WebSocket tunnel ---------------------------------------------------------------------
  {
    const c = await L.connect(P)
    const key = crypto.randomBytes(16).toString('base64')
    c.sock.write(`GET /role/api@2/chat HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
    const res = await L.readResponse(c)
    check(res && res.status === 101 && res.headers['sec-websocket-accept'] === L.wsAccept(key) &&
      /upgrade/i.test(res.headers.connection) && /websocket/i.test(res.headers.upgrade), 'WebSocket 101 through the gateway')
    const big = crypto.randomBytes(200 * 1024)
    c.sock.write(L.wsFrame(1, Buffer.from('hello ws'), true))
    c.sock.write(L.wsFrame(2, big, true))
    const frames = []
    const deadline = Date.now() + 10000
    while (frames.length < 2 && Date.now() < deadline) {
      const { frames: f, rest } = L.wsParse(c.buf)
      frames.push(...f)
      c.buf = rest
      if (frames.length < 2 && !(await L.waitData(c, 2000))) break
    }
    check(frames.length === 2 && frames[0].payload.toString() === 'hello ws' && frames[1].payload.equals(big),
      'WebSocket echo of a text and a 200 KiB binary frame')
    c.sock.write(L.wsFrame(8, Buffer.alloc(0), true))
    check(await L.waitClosed(c, 5000), 'WebSocket close ends the tunnel')
  }
  // An upgrade the instance refuses: the connection goes on as HTTP.
  {
    const c = await L.connect(P)
    c.sock.write(`GET /role/api@2/x HTTP/1.1\r\nHost: t\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n`)
    const res = await L.readResponse(c)
    check(res && res.status === 400, 'refused upgrade answered: ' + (res && res.status))
    c.sock.destroy()
  }

  // ---- Slow and malformed clients ----------------------------------------------------------
  {
    const c = await L.connect(P)
    c.sock.write('GET /role/api@2/id HTTP/1.1\r\nHost: t\r\n')
    const t0 = Date.now()
    const drip = setInterval(() => { if (!c.ended) c.sock.write('X-Slow: 1\r\n') }, 200)
    const res = await L.readResponse(c, { timeout: 8000 })
    clearInterval(drip)
    check(res && res.status === 408, 'slowloris head timed out with 408: ' + (res && res.status))
    check(await L.waitClosed(c, 5000), 'slowloris connection closed')
    check(Date.now() - t0 < 5000, 'within the head timeout, not reset by trickling bytes')
  }
  async function malformed (raw, status, what) {
    const c = await L.connect(P)
    c.sock.write(raw)
    const res = await L.readResponse(c)
    let j = {}
    try { j = JSON.parse(res.body) } catch {}
    check(res && res.status === status && j.status === status, `${what}: ${res && res.status}`)
    check(await L.waitClosed(c, 5000), `${what}: connection closed after`)
  }
  await malformed('GARBAGE\r\n\r\n', 400, 'bad request line')
  await malformed('GET /x HTTP/1.1\r\nHost: t\r\nX-Big: ' + 'a'.repeat(20000) + '\r\n\r\n', 431, 'huge header')
  await malformed('GET /' + 'a'.repeat(9000) + ' HTTP/1.1\r\nHost: t\r\n\r\n', 414, 'huge request line')
  await malformed('POST /role/api@2/count HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 400, 'bad chunk size')
  await malformed('GET / HTTP/2.0\r\nHost: t\r\n\r\n', 505, 'unsupported version')
  await malformed('GET / HTTP/1.1\r\n\r\n', 400, 'missing Host')
  await malformed('POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 400, 'conflicting lengths')
  r = await L.request(P, 'GET', '/role/api@2/id')
  check(r.status === 200, 'gateway still serves after malformed requests')

  // Idle keep-alive connections and stalled bodies time out (a second gateway, short timeouts).
  {
    const quick = await L.startGateway(tool, ['--idle-timeout', '400', '--header-timeout', '400'])
    check((await quick.cmd(`add ${K.api} api 2.3.4 ${a.port}`)) === 'ok', 'quick gateway register')
    const idle = await L.connect(quick.port)
    const t0 = Date.now()
    check(await L.waitClosed(idle, 5000) && Date.now() - t0 < 4000, 'idle connection closed after the idle timeout')
    const c = await L.connect(quick.port)
    c.sock.write('GET /role/api@2/id?n=k HTTP/1.1\r\nHost: t\r\n\r\n')
    const first = await L.readResponse(c)
    check(first && first.body.toString() === 'A k', 'served before going idle')
    check(await L.waitClosed(c, 5000), 'keep-alive connection closed when idle')
    const stall = await L.connect(quick.port)
    stall.sock.write('POST /role/api@2/count HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789')
    const res = await L.readResponse(stall, { timeout: 5000 })
    check(res && res.status === 408, 'stalled request body: 408 (' + (res && res.status) + ')')
    check(await L.waitClosed(stall, 5000), 'stalled connection closed')
    const { code } = await quick.stop()
    check(code === 0, 'quick gateway exits cleanly')
  }

  // An instance that dies in the middle of a response: the client connection is cut (it
  // cannot be told otherwise), and the gateway goes on.
  {
    const c = await L.connect(P)
    c.sock.write('GET /role/api@2/abort HTTP/1.1\r\nHost: t\r\n\r\n')
    check(await L.waitClosed(c, 5000), 'response cut by the instance: client connection closed')
    const got = c.buf.toString()
    check(/^HTTP\/1.1 200/.test(got) && got.endsWith('a'.repeat(10)), 'what arrived before the cut was passed on')
  }
  // Clients that vanish mid-transfer, many at once: nothing leaks, nothing breaks. (Tunnels
  // whose client left linger 5 s for the instance, which here never closes its side.)
  {
    const jobs = []
    for (let i = 0; i < 40; i++) {
      jobs.push(new Promise((resolve) => {
        const req = http.get({ host: '127.0.0.1', port: P, path: '/role/api@2/size/5000000', agent: false }, (res) => {
          res.once('data', () => { req.destroy(); resolve() })
        })
        req.on('error', resolve)
      }))
      jobs.push(new Promise((resolve) => {
        const req = http.request({ host: '127.0.0.1', port: P, method: 'POST', path: '/role/api@2/count', agent: false, headers: { 'content-length': 1 << 20 } })
        req.on('error', resolve)
        req.write(L.PATTERN)
        setTimeout(() => { req.destroy(); resolve() }, 20 + i)
      }))
      jobs.push((async () => {
        const c = await L.connect(P)
        c.sock.write(`GET /role/api@2/ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
        await L.readResponse(c, { timeout: 5000 })
        c.sock.write(L.wsFrame(1, Buffer.from('x'), true))
        c.sock.destroy()
      })())
    }
    await Promise.all(jobs)
    let sessions = -1
    let tunnels = -1
    for (let i = 0; i < 100 && (sessions !== 1 || tunnels !== 0); i++) {
      await L.sleep(150)
      const m = (await L.request(P, 'GET', '/metrics')).body.toString()
      sessions = Number((/hsp_gateway_open_sessions (\d+)/.exec(m) || [])[1])
      tunnels = Number((/hsp_gateway_tunnels (\d+)/.exec(m) || [])[1])
    }
    check(sessions === 1 && tunnels === 0, `120 abandoned transfers and tunnels all released (sessions ${sessions}, tunnels ${tunnels})`)
    r = await L.request(P, 'GET', '/role/api@2/id?n=z')
    check(r.status === 200 && r.body.toString() === 'A z', 'gateway serves after the abandoned transfers')
  }

  // ---- Dashboard, events, metrics ----------------------------------------------------------
  r = await L.request(P, 'GET', '/')
  check(r.status === 200 && /text\/html/.test(r.headers['content-type']) && r.body.includes('EventSource'), 'dashboard page')
  {
    const c = await L.connect(P)
    c.sock.write('GET /events HTTP/1.1\r\nHost: t\r\n\r\n')
    const head = await L.readResponse(c, { head: true })
    check(head && head.status === 200 && /text\/event-stream/.test(head.headers['content-type']), 'SSE head')
    let text = ''
    const deadline = Date.now() + 5000
    while (!text.includes('\n\n', text.indexOf('data:')) && Date.now() < deadline) {
      await L.waitData(c, 1000)
      text = c.buf.toString()
    }
    const m = /event: state\ndata: (.*)\n\n/.exec(text)
    const state = m ? JSON.parse(m[1]) : null
    check(state && state.instances.length === 9 && state.seq > 0, 'SSE state lists the instances')
    // A change reaches the open stream.
    c.buf = Buffer.alloc(0)
    await gw.cmd(`del ${K.eof}`)
    let changed = false
    const d2 = Date.now() + 5000
    while (!changed && Date.now() < d2) {
      await L.waitData(c, 1000)
      const all = c.buf.toString().split('\n\n').filter((s) => s.includes('data: '))
      for (const ev of all) {
        const st = JSON.parse(ev.slice(ev.indexOf('data: ') + 6))
        if (st.instances.length === 8 && !st.instances.some((i) => i.id === K.eof)) changed = true
      }
    }
    check(changed, 'SSE pushes the deregistration')
    c.sock.destroy()
  }
  r = await L.request(P, 'GET', '/metrics')
  const metrics = r.body.toString()
  check(r.status === 200 && /text\/plain/.test(r.headers['content-type']), '/metrics 200 text')
  const webReq = /hsp_gateway_requests_total\{role="web"\} (\d+)/.exec(metrics)
  check(webReq && Number(webReq[1]) >= 100, 'requests per role counted: ' + (webReq && webReq[1]))
  check(/hsp_gateway_errors_total\{role="dead"\} 2/.test(metrics), 'errors per role counted')
  check(/hsp_gateway_request_duration_seconds_bucket\{role="web",le="\+Inf"\} \d+/.test(metrics) &&
    /hsp_gateway_request_duration_seconds_count\{role="web"\} \d+/.test(metrics), 'latency histogram per role')
  check(/hsp_gateway_open_sessions \d+/.test(metrics), 'open sessions gauge')
  check(/hsp_gateway_registry_seq \d+/.test(metrics), 'registry sequence gauge')
  let lastFamily = ''
  let formatOk = true
  for (const line of metrics.split('\n')) {
    if (!line) continue
    if (line.startsWith('# TYPE ')) lastFamily = line.split(' ')[2]
    else if (!line.startsWith('#') && !(line.startsWith(lastFamily) && /^[a-z_]+(\{[^}]*\})? [0-9.e+-]+$/.test(line))) formatOk = false
  }
  check(formatOk, 'metrics lines follow the text format')

  const { code } = await gw.stop()
  check(code === 0, 'gateway exits cleanly (no leaks): ' + code)
  a.server.close()
  b.server.close()
  silent.close()
  eofServer.close()
  if (!L.summary('gateway_http')) process.exit(1)
  process.exit(0)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
