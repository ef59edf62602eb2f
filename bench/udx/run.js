// Runs 1 GiB single-stream loopback transfers C->C, JS->JS, C->JS and JS->C, each endpoint in
// its own process, and prints throughput and CPU seconds per GiB (both processes) with the
// ratio to JS->JS measured in this same run.
const { spawn } = require('child_process')
const dgram = require('dgram')
const path = require('path')

const C_PEER = process.argv[2]
const JS_PEER = path.join(__dirname, 'js_peer.js')
const BYTES = Number(process.env.HSP_UDX_BENCH_MB || 1024) * 1024 * 1024

function freePorts (n) {
  return Promise.all(Array.from({ length: n }, () => new Promise((resolve) => {
    const s = dgram.createSocket('udp4')
    s.bind(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)) })
  })))
}

function start (kind, args) {
  const proc = kind === 'c' ? spawn(C_PEER, [...args, '--fast', '--linger-ms', '200']) : spawn(process.execPath, [JS_PEER, ...args])
  const events = []
  const listeners = []
  let buf = ''
  proc.stdout.on('data', (d) => {
    buf += d
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i); buf = buf.slice(i + 1)
      try { const e = JSON.parse(line); e.t = process.hrtime.bigint(); events.push(e); listeners.forEach((l) => l()) } catch {}
    }
  })
  proc.stderr.pipe(process.stderr)
  const wait = (name) => new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${kind} peer: timeout waiting for ${name}`)), 300000)
    const l = () => { const e = events.find((x) => x.event === name); if (e) { clearTimeout(t); resolve(e) } }
    listeners.push(l); l()
  })
  return { proc, wait, exit: new Promise((resolve) => proc.on('exit', resolve)) }
}

async function run (src, sink) {
  const [ps, pk] = await freePorts(2)
  const k = start(sink, ['--port', String(pk), '--id', '2', '--remote-id', '1', '--remote-port', String(ps), '--mode', 'sink'])
  await k.wait('listening')
  const t0 = process.hrtime.bigint()
  const s = start(src, ['--port', String(ps), '--id', '1', '--remote-id', '2', '--remote-port', String(pk), '--mode', 'source', '--bytes', String(BYTES)])
  const end = await k.wait('end')
  const secs = Number(end.t - t0) / 1e9
  const [cs, ck] = await Promise.all([s.wait('close'), k.wait('close')])
  await Promise.all([s.exit, k.exit])
  if (end.bytes !== BYTES) throw new Error(`${src}->${sink}: sink got ${end.bytes} of ${BYTES}`)
  const gib = BYTES / (1024 * 1024 * 1024)
  return { mbps: BYTES / 1e6 / secs, cpu: (cs.cpu_s + ck.cpu_s) / gib }
}

async function main () {
  const r = {}
  for (const [name, a, b] of [['js', 'js', 'js'], ['c', 'c', 'c'], ['c_to_js', 'c', 'js'], ['js_to_c', 'js', 'c']]) {
    r[name] = await run(a, b)
  }
  const f = (x) => x.toFixed(1)
  const ratio = (x, y) => (x / y).toFixed(2)
  console.log(`bench udx_throughput_js ${f(r.js.mbps)} vs_js=1.00`)
  console.log(`bench udx_throughput_c ${f(r.c.mbps)} vs_js=${ratio(r.c.mbps, r.js.mbps)}`)
  console.log(`bench udx_throughput_c_to_js ${f(r.c_to_js.mbps)} vs_js=${ratio(r.c_to_js.mbps, r.js.mbps)}`)
  console.log(`bench udx_throughput_js_to_c ${f(r.js_to_c.mbps)} vs_js=${ratio(r.js_to_c.mbps, r.js.mbps)}`)
  // CPU seconds per GiB for both endpoints together; below 1.0 vs_js means cheaper than JS.
  console.log(`bench udx_cpu_s_per_gib_js ${r.js.cpu.toFixed(3)} vs_js=1.00`)
  console.log(`bench udx_cpu_s_per_gib_c ${r.c.cpu.toFixed(3)} vs_js=${ratio(r.c.cpu, r.js.cpu)}`)
}
main().catch((e) => { console.error(e); process.exit(1) })
