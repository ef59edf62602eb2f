// `hyperseaport seed --registrySeed S` must derive the same public key as hypercore-crypto's
// keyPair(S) (the derivation hyperdht uses), for many random seeds.
// usage: node cli_keypair.js <hyperseaport> [count]
'use strict'
const { execFile } = require('child_process')
const { promisify } = require('util')
const crypto = require('crypto')
const hc = require('hypercore-crypto')

const [bin, count = '1000'] = process.argv.slice(2)
const run = promisify(execFile)

async function main () {
  let passed = 0
  let failed = 0
  const seeds = Array.from({ length: Number(count) }, () => crypto.randomBytes(32))
  const workers = Array.from({ length: 4 }, async () => {
    while (seeds.length) {
      const seed = seeds.pop()
      const { stdout } = await run(bin, ['seed', '--registrySeed', seed.toString('hex')])
      const want = hc.keyPair(seed).publicKey.toString('hex')
      if (stdout === `registrySeed=${seed.toString('hex')}\nregistryPublicKey=${want}\n`) passed++
      else if (failed++ < 5) console.error(`FAIL seed ${seed.toString('hex')}: got ${stdout}, want ${want}`)
    }
  })
  await Promise.all(workers)
  console.log(`cli keypair: ${passed} passed, ${failed} failed`)
  process.exit(failed || passed !== Number(count) ? 1 : 0)
}
main().catch((e) => { console.error(e); process.exit(1) })
