// Blind relay node for the NAT lab test (run in pub): a persistent hyperdht node at
// 203.0.113.20:49737 bootstrapped from BOOTSTRAP, serving npm blind-relay on a fixed key
// (seed "natlab-relay", as natlab-test.js testnet). Prints {"event":"ready","relayKey":HEX}.
//   node relay.js BOOTSTRAP_HOST:PORT
const DHT = require('hyperdht')
const { Server } = require('blind-relay')
const crypto = require('hypercore-crypto')
const b4a = require('b4a')

async function main () {
  const [host, port] = process.argv[2].split(':')
  const dht = new DHT({ ephemeral: false, firewalled: false, bootstrap: [{ host, port: Number(port) }], host: '203.0.113.20', port: 49737 })
  await dht.fullyBootstrapped()
  const relay = new Server({ createStream: (o) => dht.createRawStream({ ...o, framed: true }) })
  const kp = DHT.keyPair(crypto.data(b4a.from('natlab-relay')))
  const server = dht.createServer((socket) => {
    socket.on('error', () => {})
    const session = relay.accept(socket, { id: socket.remotePublicKey })
    session.on('error', () => {})
  })
  await server.listen(kp)
  console.log(JSON.stringify({ event: 'ready', relayKey: b4a.toString(kp.publicKey, 'hex') }))
  const bye = () => { dht.destroy({ force: true }).finally(() => process.exit(0)) }
  process.on('SIGTERM', bye)
  process.on('SIGINT', bye)
}
main().catch((err) => { console.error(err); process.exit(1) })
