// Read back-pressure across implementations: a JS hyperdht 6.34 client writes 50 MiB to a
// C server (tests/dht/dht_io_tool `listen`, hsp_dht_io on 127.0.0.1) whose reader starts
// paused (hsp_dht_conn_read_stop). While paused the C side holds at most its UDX cap (1.5
// receive windows: udx-native overshoots a closing window) and the JS writer stalls on
// back-pressure; after `resume` every byte arrives intact, then both ends close cleanly.
// Usage: node dht_conn_pause.js <dht_io_tool>
const HyperDHT = require('hyperdht')
const createTestnet = require('hyperdht/testnet')
const b4a = require('b4a')
const { startC } = require('./dht_util')

const tool = process.argv[2]
const HOST = '127.0.0.1'
const TOTAL = 50 * 1024 * 1024
const CHUNK = 64 * 1024
const RWND = 4 * 1024 * 1024
let failures = 0
function check (cond, msg) {
  if (cond) console.log('ok   ' + msg)
  else { failures++; console.log('FAIL ' + msg) }
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function chunkAt (off, n) {
  const b = b4a.allocUnsafe(n)
  for (let i = 0; i < n; i++) { const x = off + i; b[i] = (x * 7 + (x >> 13)) & 255 }
  return b
}

async function main () {
  const testnet = await createTestnet(4, { host: HOST })
  const boot = testnet.bootstrap.map((b) => `${b.host}:${b.port}`).join(',')
  const c = startC(tool, ['--bootstrap', boot])
  await c.wait(/^ready/)
  const key = (await c.ask(`listen ${'5a'.repeat(32)}`, /^listen [0-9a-f]{64}$|^error/)).split(' ')[1]
  const js = new HyperDHT({ bootstrap: testnet.bootstrap, host: HOST, firewalled: false })
  await js.fullyBootstrapped()
  let conn = null
  for (let i = 0; i < 20 && !conn; i++) { // the C announce may still be on its way
    const s = js.connect(b4a.from(key, 'hex'))
    const ok = await new Promise((resolve) => { s.once('open', () => resolve(true)); s.once('error', () => resolve(false)) })
    if (ok) conn = s
    else await sleep(250)
  }
  check(conn !== null, 'JS client connected to the C server')
  if (!conn) process.exit(1)
  conn.on('error', () => {})
  await c.wait(/^conn/)

  let written = 0
  const writer = (async () => {
    while (written < TOTAL) {
      const n = Math.min(CHUNK, TOTAL - written)
      const more = conn.write(chunkAt(written, n))
      written += n
      if (!more) await new Promise((resolve) => conn.once('drain', resolve))
    }
    conn.end()
  })()

  // paused: poll what C holds until it stops growing for 1.5 s
  let last = -1; let since = Date.now(); let held = 0; let maxHeld = 0
  while (Date.now() - since < 1500) {
    await sleep(100)
    const h = (await c.ask('held', /^held/)).split(' ')
    held = Number(h[1]); maxHeld = Number(h[2])
    if (held !== last) { last = held; since = Date.now() }
  }
  console.log(`# paused: JS wrote ${written >> 10} KiB, C holds ${held >> 10} KiB (max ${maxHeld >> 10} KiB)`)
  check(held >= 1024 * 1024, 'the JS sender used the window')
  check(maxHeld <= RWND + RWND / 2 + 65600, `C held at most 1.5 windows while paused (${maxHeld} bytes)`)
  check(written < TOTAL, 'the JS writer stalled on back-pressure')

  const endedP = new Promise((resolve) => conn.once('end', resolve))
  conn.resume()
  c.send('resume')
  const eof = (await c.wait(/^eof/, 120000)).split(' ')
  await writer
  check(Number(eof[1]) === TOTAL && eof[2] === 'ok', `C received all ${TOTAL} bytes intact after resume (${eof.slice(1).join(' ')})`)
  await Promise.race([endedP, sleep(10000)])
  conn.destroy()
  const code = await new Promise((resolve) => { c.proc.on('exit', resolve); c.stop() })
  check(code === 0, 'dht_io_tool exits cleanly')
  await js.destroy()
  await testnet.destroy()
  if (failures) { console.error(`${failures} checks failed`); process.exit(1) }
  console.log('dht_conn_pause: all checks passed')
}
main().catch((err) => { console.error(err); process.exit(1) })
