// udx-native endpoint for the benchmark, same options and JSON lines as udx_peer --fast.
const path = require('path')
const UDX = require(path.join(__dirname, '../../tests/interop/node_modules/udx-native'))
const args = {}
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1]
const u = new UDX()
const sock = u.createSocket()
sock.bind(Number(args.port || 0), '127.0.0.1')
const stream = u.createStream(Number(args.id), { firewall: () => false })
stream.connect(sock, Number(args['remote-id']), Number(args['remote-port']), '127.0.0.1')
let bytes = 0
console.log(JSON.stringify({ event: 'listening', port: sock.address().port }))
stream.on('data', (d) => { bytes += d.length })
stream.on('end', () => {
  console.log(JSON.stringify({ event: 'end', bytes }))
  if (args.mode !== 'source') stream.end()
})
stream.on('close', () => {
  const c = process.cpuUsage()
  console.log(JSON.stringify({ event: 'close', cpu_s: (c.user + c.system) / 1e6 }))
  setTimeout(() => sock.close(), 200)
})
if (args.mode === 'source') {
  const chunk = Buffer.alloc(65536, 0x63)
  let left = Number(args.bytes)
  const pump = () => {
    while (left > 0) {
      const n = Math.min(chunk.length, left); left -= n
      if (!stream.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return stream.once('drain', pump)
    }
    stream.end()
  }
  pump()
}
