// The JS half of dht_idle_conn_kib (run by run.js in its own process, node --expose-gc):
// a server and a client HyperDHT in this process, one warm-up connection, then N more that
// exchange one message each way and stay open. Prints "idle_conn_kib <x> ..." like the C
// bench (RSS growth per connection, both ends counted; garbage collected before each read).
//   node --expose-gc idle.js BOOTSTRAP N
const HyperDHT = require('hyperdht')

const bootstrap = process.argv[2].split(',').map((s) => { const [h, p] = s.split(':'); return { host: h, port: Number(p) } })
const N = Number(process.argv[3])
const HOST = '127.0.0.1'
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function rss () {
  for (let i = 0; i < 3; i++) { global.gc(); await sleep(100) }
  return Math.round(process.memoryUsage().rss / 1024)
}

async function main () {
  const sdht = new HyperDHT({ bootstrap, host: HOST, firewalled: false })
  const cdht = new HyperDHT({ bootstrap, host: HOST, firewalled: false })
  await sdht.fullyBootstrapped()
  await cdht.fullyBootstrapped()
  const server = sdht.createServer((c) => { c.on('error', () => {}); c.once('data', (d) => c.write(d)) })
  await server.listen()
  const conns = []
  const open = async () => {
    const c = cdht.connect(server.publicKey)
    c.on('error', () => {})
    c.write(Buffer.from('hello'))
    await new Promise((resolve, reject) => { c.once('data', resolve); c.once('close', reject) })
    conns.push(c)
  }
  await open()
  await sleep(500)
  const before = await rss()
  for (let i = 0; i < N; i++) await open()
  await sleep(1000)
  const after = await rss()
  console.log(`idle_conn_kib ${((after - before) / N).toFixed(2)} rss_before ${before} rss_after ${after} n ${N}`)
  for (const c of conns) c.destroy()
  await server.close()
  await cdht.destroy()
  await sdht.destroy()
}
main().catch((err) => { console.error(err); process.exit(1) })
