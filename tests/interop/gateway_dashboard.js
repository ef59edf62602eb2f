// The gateway dashboard in headless Chromium (Debian `chromium`, driven over the DevTools
// protocol): a registered instance appears, and disappears live (server-sent events, no
// reload) when it deregisters. Screenshots are kept as test artefacts.
// Usage: node gateway_dashboard.js GATEWAY_TOOL OUT_DIR
'use strict'
const { spawn } = require('child_process')
const fs = require('fs')
const path = require('path')
const net = require('net')
const crypto = require('crypto')
const http = require('http')
const L = require('./gateway_lib')
const { check } = L

const [tool, outDir] = process.argv.slice(2)

function httpJson (port, method, p) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p }, (res) => {
      let body = ''
      res.on('data', (d) => { body += d })
      res.on('end', () => { try { resolve(JSON.parse(body)) } catch (e) { reject(e) } })
    })
    req.on('error', reject)
    req.end()
  })
}

// A DevTools protocol session over our own WebSocket client (Node 20 has none built in).
function cdpConnect (wsUrl) {
  const u = new URL(wsUrl)
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(u.port), u.hostname)
    const key = crypto.randomBytes(16).toString('base64')
    let buf = Buffer.alloc(0)
    let open = false
    let msg = []
    let id = 0
    const pending = new Map()
    sock.on('error', reject)
    sock.on('connect', () => {
      sock.write(`GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`)
    })
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d])
      if (!open) {
        const i = buf.indexOf('\r\n\r\n')
        if (i < 0) return
        if (!buf.subarray(0, i).toString().includes(L.wsAccept(key))) return reject(new Error('bad handshake'))
        buf = buf.subarray(i + 4)
        open = true
        resolve(session)
      }
      const { frames, rest } = L.wsParse(buf)
      buf = rest
      for (const f of frames) {
        msg.push(f.payload)
        if (!f.fin) continue
        const m = JSON.parse(Buffer.concat(msg).toString())
        msg = []
        if (m.id && pending.has(m.id)) {
          pending.get(m.id)(m)
          pending.delete(m.id)
        }
      }
    })
    const session = {
      send (method, params = {}) {
        return new Promise((resolve) => {
          const mid = ++id
          pending.set(mid, resolve)
          sock.write(L.wsFrame(1, Buffer.from(JSON.stringify({ id: mid, method, params })), true))
        })
      },
      async eval (expr) {
        const r = await session.send('Runtime.evaluate', { expression: expr, returnByValue: true })
        return r.result && r.result.result ? r.result.result.value : undefined
      },
      close () { sock.destroy() }
    }
  })
}

async function waitFor (fn, ms) {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await fn()) return true
    await L.sleep(200)
  }
  return false
}

async function main () {
  const a = await L.startBackend('A')
  const gw = await L.startGateway(tool, [])
  const key = L.hexKey(42)
  check((await gw.cmd(`add ${key} shop 1.4.2 ${a.port} {"region":"eu-west"}`)) === 'ok', 'register')
  check((await gw.cmd(`add ${L.hexKey(43)} search 0.9.0 ${a.port}`)) === 'ok', 'register second')
  for (let i = 0; i < 5; i++) await L.request(gw.port, 'GET', '/role/shop@1/id')

  const profile = fs.mkdtempSync(path.join(outDir, 'gateway-chromium-'))
  const chrome = spawn('chromium', ['--headless=new', '--no-sandbox', '--disable-gpu',
    '--disable-dev-shm-usage', '--no-first-run', '--remote-debugging-port=0',
    `--user-data-dir=${profile}`, '--window-size=1280,720', 'about:blank'],
  { stdio: ['ignore', 'ignore', 'ignore'] })
  const chromeExit = new Promise((resolve) => chrome.on('exit', resolve))
  chrome.on('error', (e) => { console.error('cannot start chromium: ' + e.message); process.exit(1) })
  let devPort = 0
  await waitFor(() => {
    try {
      devPort = Number(fs.readFileSync(path.join(profile, 'DevToolsActivePort'), 'utf8').split('\n')[0])
    } catch {}
    return devPort > 0
  }, 30000)
  check(devPort > 0, 'chromium DevTools port')
  const target = await httpJson(devPort, 'PUT', `/json/new?http://127.0.0.1:${gw.port}/`)
  const cdp = await cdpConnect(target.webSocketDebuggerUrl)
  await cdp.send('Page.enable')
  await cdp.send('Emulation.setDeviceMetricsOverride', { width: 1280, height: 720, deviceScaleFactor: 1, mobile: false })

  const shown = await waitFor(async () => {
    const t = await cdp.eval(`(() => { const r = document.querySelector('tr[data-id="${key}"]');
      return r ? r.innerText : '' })()`)
    return typeof t === 'string' && t.includes('shop') && t.includes('1.4.2') && t.includes('healthy') &&
      t.includes('eu-west')
  }, 20000)
  check(shown, 'dashboard shows the registered instance (role, version, health, tags)')
  const traffic = await cdp.eval(`document.getElementById('roles').innerText`)
  check(/shop\s+5\s+0/.test(traffic || ''), 'dashboard shows traffic for the role: ' + JSON.stringify(traffic))
  check((await cdp.eval(`document.getElementById('status').textContent`)) === 'live', 'event stream live')
  const shot1 = await cdp.send('Page.captureScreenshot', { format: 'png' })
  const png1 = path.join(outDir, 'gateway_dashboard.png')
  fs.writeFileSync(png1, Buffer.from(shot1.result.data, 'base64'))
  check(fs.statSync(png1).size > 1000, 'screenshot saved: ' + png1)

  check((await gw.cmd(`del ${key}`)) === 'ok', 'deregister')
  const gone = await waitFor(async () =>
    (await cdp.eval(`document.querySelector('tr[data-id="${key}"]') === null &&
      document.getElementById('instances').innerText.includes('search')`)) === true, 20000)
  check(gone, 'dashboard drops the instance live after it deregisters')
  const shot2 = await cdp.send('Page.captureScreenshot', { format: 'png' })
  fs.writeFileSync(path.join(outDir, 'gateway_dashboard_after.png'), Buffer.from(shot2.result.data, 'base64'))

  await cdp.send('Browser.close').catch(() => {})
  cdp.close()
  const t = setTimeout(() => chrome.kill('SIGKILL'), 10000)
  await chromeExit
  clearTimeout(t)
  fs.rmSync(profile, { recursive: true, force: true })
  const { code } = await gw.stop()
  check(code === 0, 'gateway exits cleanly: ' + code)
  a.server.close()
  if (!L.summary('gateway_dashboard')) process.exit(1)
  process.exit(0)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
