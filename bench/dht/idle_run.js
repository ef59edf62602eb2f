// dht_idle_conn_kib: RSS growth per open idle hyperdht connection (server and client ends
// both in the measuring process), C (dht_idle_bench) vs JS (idle.js, hyperdht 6.34) on the
// same loopback createTestnet, N connections each (HSP_DHT_BENCH_IDLE, default 200).
//   node idle_run.js <dht_idle_bench>
const { spawn } = require('child_process')
const path = require('path')
const createTestnet = require('hyperdht/testnet')

const BENCH = process.argv[2]
const N = Number(process.env.HSP_DHT_BENCH_IDLE || 200)
const HOST = '127.0.0.1'

function run (cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    p.stdout.on('data', (d) => { out += d })
    p.on('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('idle_conn_kib '))
      if (code !== 0 || !line) return reject(new Error(`${cmd} failed (${code}): ${out}`))
      resolve(line)
    })
  })
}

async function main () {
  const testnet = await createTestnet(5, { host: HOST })
  const bootstrap = testnet.bootstrap.map((b) => `${b.host}:${b.port}`).join(',')
  const c = await run(BENCH, [bootstrap, String(N)])
  const js = await run(process.execPath, ['--expose-gc', path.join(__dirname, 'idle.js'), bootstrap, String(N)])
  const ck = Number(c.split(' ')[1])
  const jk = Number(js.split(' ')[1])
  console.log(`bench dht_idle_conn_kib ${ck.toFixed(2)} vs_js=${(ck / jk).toFixed(2)}`)
  console.log(`# C:  ${c}`)
  console.log(`# JS: ${js}`)
  await testnet.destroy()
}
main().catch((err) => { console.error(err); process.exit(1) })
