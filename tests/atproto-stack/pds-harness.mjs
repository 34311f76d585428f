// A real ATProto stack on loopback for Stratos' system tests: an in-memory PLC directory and a
// real PDS in one Node process. No Postgres, no Docker.
//
//   node pds-harness.mjs        (Node 22; scripts/install-atproto-stack installs it)
//
// Prints one line `READY {json}` (pdsUrl, plcUrl, pdsDid, adminPassword) once both answer, then
// runs until SIGTERM/SIGINT or until stdin closes (so it never outlives the test that started
// it), and removes its data directory.
//
// Lines on stdin: `pause` makes the PDS unreachable (every connection is dropped, as if it were
// down) and answers `PAUSED`; `resume` brings it back and answers `RESUMED`;
// `client <public prefix> <local prefix>` makes the authorization server fetch OAuth client
// metadata and JWKS under the public (https) prefix from the local one instead, so that a
// confidential client can be tested on loopback, and answers `CLIENT`.
//
// Env: PLC_PORT, PDS_PORT (default: free ports), PDS_ADMIN_PASSWORD.
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import net from 'node:net'
import http from 'node:http'

const plc = await import('@did-plc/server')
const { PDS } = await import('@atproto/pds')
const { Secp256k1Keypair } = await import('@atproto/crypto')

const freePort = () => new Promise((resolve, reject) => {
  const server = net.createServer()
  server.unref()
  server.on('error', reject)
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address()
    server.close(() => resolve(port))
  })
})
const plcPort = Number(process.env.PLC_PORT) || await freePort()
const pdsPort = Number(process.env.PDS_PORT) || await freePort()
// The caller may own the data directory (and remove it even after killing this process).
const dataDir = process.env.ATPROTO_DATA_DIR ?? await fs.mkdtemp(path.join(os.tmpdir(), 'stratos-atproto-'))

// The PLC directory. @did-plc/server 0.0.1 (the only published version) serves legacy DID
// documents; plc.directory serves `Multikey` ones. A small proxy in front rewrites `GET /<did>`
// to the current shape (from `/<did>/data`) and passes everything else through.
const plcInnerPort = await freePort()
const plcServer = plc.PlcServer.create({ db: plc.Database.mock(), port: plcInnerPort })
await plcServer.start()
const inner = `http://127.0.0.1:${plcInnerPort}`
const plcHandler = async (req, res) => {
  try {
    const match = req.method === 'GET' && /^\/(did:plc:[a-z2-7]{24})$/.exec(decodeURIComponent(req.url))
    if (match) {
      const did = match[1]
      const response = await fetch(`${inner}/${did}/data`)
      if (!response.ok) {
        res.writeHead(response.status, { 'content-type': 'application/json' })
        res.end(Buffer.from(await response.arrayBuffer()))
        return
      }
      const data = await response.json()
      const document = {
        '@context': ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/multikey/v1'],
        id: did,
        alsoKnownAs: data.alsoKnownAs,
        verificationMethod: Object.entries(data.verificationMethods).map(([id, key]) => ({
          id: `${did}#${id}`, type: 'Multikey', controller: did, publicKeyMultibase: key.replace(/^did:key:/, ''),
        })),
        service: Object.entries(data.services).map(([id, service]) => ({
          id: `#${id}`, type: service.type, serviceEndpoint: service.endpoint,
        })),
      }
      res.writeHead(200, { 'content-type': 'application/did+ld+json' })
      res.end(JSON.stringify(document))
      return
    }
    const body = req.method === 'GET' || req.method === 'HEAD' ? undefined : Buffer.concat(await req.toArray())
    const headers = { ...req.headers }
    delete headers.host
    delete headers['content-length']
    const response = await fetch(inner + req.url, { method: req.method, headers, body })
    res.writeHead(response.status, { 'content-type': response.headers.get('content-type') ?? 'application/octet-stream' })
    res.end(Buffer.from(await response.arrayBuffer()))
  } catch (error) {
    res.writeHead(502)
    res.end(String(error))
  }
}
// "localhost" may resolve to ::1 first: listen on both loopback families.
const plcProxies = [http.createServer(plcHandler), http.createServer(plcHandler)]
await new Promise((resolve) => plcProxies[0].listen(plcPort, '127.0.0.1', resolve))
await new Promise((resolve) => plcProxies[1].listen({ port: plcPort, host: '::1', ipv6Only: true }, resolve))
  .catch(() => plcProxies.pop())
const plcUrl = `http://localhost:${plcPort}`

// The PDS.
const adminPassword = process.env.PDS_ADMIN_PASSWORD || 'admin-pass'
const rotationKey = await Secp256k1Keypair.create({ exportable: true })
const pds = await PDS.fromEnv({
  devMode: true, // http://localhost URLs, service DID did:web:localhost
  hostname: 'localhost',
  port: pdsPort,
  dataDirectory: dataDir,
  blobstoreDiskLocation: path.join(dataDir, 'blobs'),
  didPlcUrl: plcUrl,
  plcRotationKeyK256PrivateKeyHex: Buffer.from(await rotationKey.export()).toString('hex'),
  recoveryDidKey: (await Secp256k1Keypair.create()).did(),
  adminPassword,
  jwtSecret: 'stratos-test-jwt-secret',
  serviceHandleDomains: ['.test'],
  inviteRequired: false,
  disableSsrfProtection: true, // the PDS fetches from loopback (PLC, did:web, OAuth clients)
  bskyAppViewUrl: 'https://appview.invalid',
  bskyAppViewDid: 'did:example:appview',
  modServiceUrl: 'https://moderation.invalid',
  modServiceDid: 'did:example:moderation',
  crawlers: [],
})
await pds.start()

console.log('READY ' + JSON.stringify({
  plcUrl,
  pdsUrl: `http://localhost:${pdsPort}`,
  pdsDid: pds.ctx.cfg.service.did,
  adminPassword,
  handleDomain: '.test',
}))

let closing = false
const shutdown = async (why) => {
  if (closing) return
  closing = true
  console.error(`[atproto-stack] stopping (${why})`)
  try { await pds.destroy() } catch (error) { console.error(error) }
  try { await plcServer.destroy() } catch (error) { console.error(error) }
  for (const proxy of plcProxies) await new Promise((resolve) => proxy.close(resolve))
  await fs.rm(dataDir, { recursive: true, force: true })
  process.exit(0)
}
process.on('SIGTERM', () => shutdown('SIGTERM'))
process.on('SIGINT', () => shutdown('SIGINT'))
process.stdin.on('end', () => shutdown('stdin closed'))

// An outage on demand: while paused, the PDS drops every connection it is handed.
let paused = false
const handlers = pds.server.listeners('request')
pds.server.removeAllListeners('request')
pds.server.on('request', (req, res) => {
  if (paused) {
    req.socket.destroy()
    return
  }
  for (const handler of handlers) handler.call(pds.server, req, res)
})
// Client metadata of https clients, served from loopback.
const clientPrefixes = []
const localUrl = (uri) => {
  for (const [from, to] of clientPrefixes) if (uri.startsWith(from)) return to + uri.slice(from.length)
  return null
}
const clientManager = pds.ctx.oauthProvider.clientManager
const getMetadata = clientManager.metadataGetter.get.bind(clientManager.metadataGetter)
clientManager.metadataGetter.get = async (uri, options) => {
  const local = localUrl(uri)
  if (!local) return getMetadata(uri, options)
  const document = await (await fetch(local)).json()
  return clientManager.validateClientMetadata(uri, document)
}
const getJwks = clientManager.jwks.get.bind(clientManager.jwks)
clientManager.jwks.get = async (uri, options) => {
  const local = localUrl(uri)
  return local ? (await fetch(local)).json() : getJwks(uri, options)
}

let pending = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => {
  pending += chunk
  let newline
  while ((newline = pending.indexOf('\n')) >= 0) {
    const command = pending.slice(0, newline).trim()
    pending = pending.slice(newline + 1)
    if (command === 'pause') { paused = true; console.log('PAUSED') }
    if (command === 'resume') { paused = false; console.log('RESUMED') }
    const [verb, from, to] = command.split(/\s+/)
    if (verb === 'client' && from && to) { clientPrefixes.push([from, to]); console.log('CLIENT') }
  }
})
