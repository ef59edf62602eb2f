// Data-plane benchmarks through the real binary on a loopback DHT (see run.sh).
//   bench proxy_new_conn_p50_ms <ms> vs_fresh_connect=<ratio>   warm session vs a fresh
//     HyperDHT connect per connection (ratio = proxy / fresh: lower is better)
//   bench proxy_throughput_mbs <MB/s> vs_direct=<ratio>          200 MiB upload through the
//     proxy vs straight to the backend (ratio = proxy / direct)
// Usage: node run.js <hyperseaport> <agent_conn_bench>
const path = require('path')
const os = require('os')
const fs = require('fs')
const net = require('net')
const crypto = require('crypto')
const { execFile } = require('child_process')
// The backend lives in this process: the bench programs must run asynchronously.
const exec = (bin, args) => new Promise((resolve, reject) => execFile(bin, args, { maxBuffer: 1 << 24 }, (err, out) => err ? reject(err) : resolve(out)))
const { HOST, sleep, run, dhtNet, backend, client } = require(path.join(__dirname, '../../tests/interop/dataplane_lib'))

const [hsp, connBench] = process.argv.slice(2)
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hsp-bench-'))
process.env.HOME = tmp

function p50 (xs) { const s = xs.slice().sort((a, b) => a - b); return s[Math.floor(s.length / 2)] }
function times (out) { return out.split('\n').filter((l) => l.startsWith('conn_ms ')).map((l) => Number(l.slice(8))) }
function freePort () {
  return new Promise((resolve) => { const s = net.createServer().listen(0, HOST, () => { const p = s.address().port; s.close(() => resolve(p)) }) })
}
function upload (port, bytes) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint()
    const sock = net.connect(port, HOST)
    let data = ''
    let sent = false
    sock.on('data', (d) => {
      data += d
      if (!sent && data.includes('\n')) { sent = true; sock.end(bytes) }
    })
    sock.on('error', reject)
    sock.on('close', () => {
      const s = Number(process.hrtime.bigint() - t0) / 1e9
      if (!data.includes(`got ${bytes.length} `)) reject(new Error('short transfer: ' + data.slice(-80)))
      else resolve(bytes.length / 1e6 / s)
    })
  })
}

async function main () {
  const dht = await dhtNet(hsp)
  const netArgs = ['--bootstrap', dht.boot, '--bind', HOST]
  const reg = run(hsp, ['registry', '--registrySeed', crypto.randomBytes(32).toString('hex'), '--storage', path.join(tmp, 'store'), ...netArgs], 'registry')
  const key = (await reg.wait(/^registryPublicKey=([0-9a-f]{64})/, 60000))[1]
  const b = await backend('bench', 0, { hash: false })
  const svc = run(hsp, ['service', '--port', String(b.port), '--role', 'bench@1.0.0', '--registryPublicKey', key, ...netArgs], 'service')
  const svcKey = (await svc.wait(/^started p2p service on ([0-9a-f]{64})/))[1]
  await svc.wait(/^registered service/, 60000)
  await sleep(1500)
  const port = await freePort()
  const proxy = run(hsp, ['proxy', '--port', String(port), '--role', 'bench@1', '--registryPublicKey', key, ...netArgs, '--storage', path.join(tmp, 'proxy')], 'proxy')
  await proxy.wait(/^proxy from/, 60000)
  for (let i = 0; i < 20; i++) await client(port) // warm the session

  const viaProxy = p50(times(await exec(connBench, ['tcp', String(port), '300'])))
  const freshOut = await exec(connBench, ['fresh', dht.boot, svcKey, '60'])
  const fresh = p50(times(freshOut))
  const freshFailed = freshOut.split('\n').filter((l) => l.startsWith('conn_failed')).length
  console.log(`bench proxy_new_conn_p50_ms ${viaProxy.toFixed(3)} vs_fresh_connect=${(viaProxy / fresh).toPrecision(3)}`)
  console.log(`# fresh HyperDHT connect per connection: p50 ${fresh.toFixed(3)} ms (${freshFailed} of 60 failed)`)

  const big = crypto.randomBytes(200 * 1024 * 1024)
  const direct = await upload(b.port, big)
  const proxied = await upload(port, big)
  const direct2 = await upload(b.port, big)
  const d = Math.max(direct, direct2)
  console.log(`bench proxy_throughput_mbs ${proxied.toFixed(1)} vs_direct=${(proxied / d).toPrecision(3)}`)
  console.log(`# direct to the backend: ${d.toFixed(1)} MB/s`)

  proxy.proc.kill('SIGTERM')
  svc.proc.kill('SIGTERM')
  await Promise.all([proxy.exited, svc.exited])
  reg.proc.kill('SIGTERM')
  await reg.exited
  await b.close()
  dht.stop()
  fs.rmSync(tmp, { recursive: true, force: true })
}
main().catch((err) => { console.error(err); process.exit(1) })
