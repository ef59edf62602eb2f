// 200 sequential connects to one JS server on a 5-node createTestnet (loopback), each timed
// until the server's first byte arrives, from the C client (dht_connect_bench) and from a
// JS hyperdht client; prints p50/p99 and the C/JS ratio; then the C client against a C server
// (dht_connect_bench --serve), compared with the JS pair. JS DHTs use firewalled: false
// (docs/testing.md loopback trap).
const { spawn } = require('child_process')
const HyperDHT = require('hyperdht')
const createTestnet = require('hyperdht/testnet')

const BENCH = process.argv[2]
const N = Number(process.env.HSP_DHT_BENCH_CONNECTS || 200)
const HOST = '127.0.0.1'
const pct = (a, p) => { const s = a.slice().sort((x, y) => x - y); return s[Math.min(s.length - 1, Math.floor(s.length * p))] }

function runC (bootstrap, key) {
  return new Promise((resolve, reject) => {
    const c = []
    const p = spawn(BENCH, [bootstrap, key, String(N)], { stdio: ['ignore', 'pipe', 'inherit'] })
    let buf = ''
    p.stdout.on('data', (d) => { buf += d })
    p.on('exit', (code) => {
      for (const l of buf.split('\n')) if (l.startsWith('connect_ms ')) c.push(Number(l.split(' ')[1]))
      code === 0 ? resolve(c) : reject(new Error('C bench failed'))
    })
  })
}

async function main () {
  const testnet = await createTestnet(5, { host: HOST })
  const sdht = new HyperDHT({ bootstrap: testnet.bootstrap, host: HOST, firewalled: false })
  const server = sdht.createServer((c) => { c.on('error', () => {}); c.write(Buffer.from('x')) })
  await server.listen()
  const key = server.publicKey.toString('hex')
  const bootstrap = testnet.bootstrap.map((b) => `${b.host}:${b.port}`).join(',')

  const c = await runC(bootstrap, key)
  // C client against a C server (the pair the agent uses): its first byte must not wait
  // for a retransmission (a dropped early packet cost a 1 s RTO on every connect).
  const srv = spawn(BENCH, ['--serve', bootstrap], { stdio: ['ignore', 'pipe', 'inherit'] })
  const ckey = await new Promise((resolve) => {
    let buf = ''
    srv.stdout.on('data', (d) => {
      buf += d
      const m = buf.match(/^key ([0-9a-f]{64})$/m)
      if (m) resolve(m[1])
    })
  })
  const cc = await runC(bootstrap, ckey)
  srv.kill()

  const cdht = new HyperDHT({ bootstrap: testnet.bootstrap, host: HOST, firewalled: false })
  await cdht.fullyBootstrapped()
  const js = []
  for (let i = 0; i < N; i++) {
    const t = process.hrtime.bigint()
    const conn = cdht.connect(server.publicKey)
    conn.on('error', () => {})
    await new Promise((resolve) => conn.once('data', resolve))
    js.push(Number(process.hrtime.bigint() - t) / 1e6)
    conn.destroy()
  }
  const c50 = pct(c, 0.5); const j50 = pct(js, 0.5)
  const c99 = pct(c, 0.99); const j99 = pct(js, 0.99)
  console.log(`bench dht_connect_p50_c ${c50.toFixed(2)} vs_js=${(c50 / j50).toFixed(2)}`)
  console.log(`bench dht_connect_p99_c ${c99.toFixed(2)} vs_js=${(c99 / j99).toFixed(2)}`)
  const cc50 = pct(cc, 0.5); const cc99 = pct(cc, 0.99)
  console.log(`bench dht_connect_c2c_p50 ${cc50.toFixed(2)} vs_js=${(cc50 / j50).toFixed(2)}`)
  console.log(`bench dht_connect_c2c_p99 ${cc99.toFixed(2)} vs_js=${(cc99 / j99).toFixed(2)}`)
  console.log(`# js p50 ${j50.toFixed(2)} ms p99 ${j99.toFixed(2)} ms, ${c.length} C and ${js.length} JS connects`)
  await server.close()
  await cdht.destroy()
  await sdht.destroy()
  await testnet.destroy()
}
main().catch((err) => { console.error(err); process.exit(1) })
