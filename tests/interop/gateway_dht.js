// The gateway reaching instances over HyperDHT: a JS testnet, a JS hyperdht server serving
// HTTP on each encrypted connection (node's http server fed the secret stream), and
// gateway_tool joined to the testnet with the instance registered by its public key.
// Usage: node gateway_dht.js GATEWAY_TOOL
'use strict'
const HyperDHT = require('hyperdht')
const createTestnet = require('hyperdht/testnet')
const crypto = require('crypto')
const b4a = require('b4a')
const L = require('./gateway_lib')
const { check } = L

const tool = process.argv[2]
const HOST = '127.0.0.1'

async function main () {
  const testnet = await createTestnet(5, { host: HOST })
  const bootstrap = testnet.bootstrap.map((b) => `${b.host}:${b.port}`).join(',')
  const dht = new HyperDHT({ bootstrap: testnet.bootstrap, host: HOST, firewalled: false })
  await dht.fullyBootstrapped()

  // A minimal keep-alive HTTP responder on each encrypted connection (node's http server
  // corks its socket, which the streamx duplex does not honour for later responses).
  let connections = 0
  function serveHttp (conn) {
    let buf = Buffer.alloc(0)
    let state = null
    conn.on('data', (d) => {
      buf = Buffer.concat([buf, d])
      for (;;) {
        if (!state) {
          const i = buf.indexOf('\r\n\r\n')
          if (i < 0) return
          const head = buf.subarray(0, i).toString('latin1')
          buf = buf.subarray(i + 4)
          const url = head.split('\r\n')[0].split(' ')[1]
          const m = /\r\ncontent-length: *(\d+)/i.exec(head)
          const len = m ? Number(m[1]) : 0
          const xff = (/\r\nx-forwarded-for: *([^\r\n]*)/i.exec(head) || [])[1]
          if (url.startsWith('/echo')) {
            conn.write(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${len}\r\n\r\n`)
            state = { remaining: len, echo: true }
          } else {
            const body = JSON.stringify({ url, xff, over: 'hyperdht' })
            conn.write(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`)
            state = { remaining: len, echo: false }
          }
        }
        const k = Math.min(state.remaining, buf.length)
        if (k && state.echo) conn.write(Buffer.from(buf.subarray(0, k)))
        buf = buf.subarray(k)
        state.remaining -= k
        if (state.remaining > 0) return
        state = null
      }
    })
  }
  const server = dht.createServer((conn) => {
    connections++
    conn.on('error', () => {})
    serveHttp(conn)
  })
  await server.listen()
  const key = b4a.toString(server.publicKey, 'hex')

  const gw = await L.startGateway(tool, ['--bootstrap', bootstrap, '--upstream-timeout', '20000'])
  check((await gw.cmd(`add ${key} web 2.1.0 dht`)) === 'ok', 'register the DHT instance')
  await L.sleep(1000) // let the announce land

  let r = await L.request(gw.port, 'GET', '/role/web@2/hello?q=1')
  let j = {}
  try { j = JSON.parse(r.body) } catch {}
  check(r.status === 200 && j.url === '/hello?q=1' && j.over === 'hyperdht', 'GET through HyperDHT: ' + r.status + ' ' + r.body)
  const c = await L.connect(gw.port)
  let ok = 0
  for (let i = 0; i < 20; i++) {
    c.sock.write(`GET /instance/${key}/n${i} HTTP/1.1\r\nHost: t\r\n\r\n`)
    const res = await L.readResponse(c, { timeout: 20000 })
    if (res && res.status === 200 && JSON.parse(res.body).url === '/n' + i) ok++
  }
  check(ok === 20, `20 keep-alive requests over HyperDHT: ${ok}`)
  const body = crypto.randomBytes(4 * 1024 * 1024)
  c.sock.write(`POST /role/web/echo HTTP/1.1\r\nHost: t\r\nContent-Length: ${body.length}\r\n\r\n`)
  c.sock.write(body)
  const echo = await L.readResponse(c, { timeout: 60000 })
  check(echo && echo.status === 200 && echo.body.equals(body), '4 MiB echoed over HyperDHT (request and response streamed)')
  c.sock.destroy()
  check(connections >= 1 && connections <= 3, `upstream streams reused (${connections} HyperDHT connections)`)

  // An instance whose key nobody announces: the connect fails, 502, then 503.
  check((await gw.cmd(`add ${L.hexKey(9)} ghost 1.0.0 dht`)) === 'ok', 'register a key nobody serves')
  r = await L.request(gw.port, 'GET', '/role/ghost/x')
  check(r.status === 502, 'unreachable DHT instance: 502 (' + r.status + ')')
  r = await L.request(gw.port, 'GET', '/role/ghost/x')
  check(r.status === 503, 'then marked failed: 503 (' + r.status + ')')

  const { code } = await gw.stop()
  check(code === 0, 'gateway exits cleanly: ' + code)
  await server.close()
  await dht.destroy()
  await testnet.destroy()
  if (!L.summary('gateway_dht')) process.exit(1)
  process.exit(0)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
