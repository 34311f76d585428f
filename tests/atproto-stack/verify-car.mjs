// Checks Stratos' CAR exports with the official @atproto/repo package, as an independent
// oracle: a whole-repository CAR, record proofs (presence and absence), and a `since` diff
// applied on top of an earlier export.
//
//   node verify-car.mjs <job.json>
//
// job.json: {did, signingKey, repo: <car path>, proofs: [{car, collection, rkey, cid|null}],
//            diff?: {base: <car path>, car: <car path>}}
// Prints one JSON line: {repo: {records, rev}, proofs: [bool], diff?: {writes: [...]}}; exits 1
// with the error on stderr when a check throws.
import fs from 'node:fs/promises'

const { verifyRepoCar, verifyProofs, verifyDiffCar, readCarWithRoot, MemoryBlockstore, Repo } =
  await import('@atproto/repo')
const { parseCid } = await import('@atproto/lex-data')

const job = JSON.parse(await fs.readFile(process.argv[2], 'utf8'))
const out = {}

const repo = await verifyRepoCar(await fs.readFile(job.repo), job.did, job.signingKey)
out.repo = { records: repo.creates.length, rev: repo.commit.rev }

out.proofs = []
for (const proof of job.proofs) {
  const claim = { collection: proof.collection, rkey: proof.rkey, cid: proof.cid ? parseCid(proof.cid) : null }
  const { verified } = await verifyProofs(await fs.readFile(proof.car), [claim], job.did, job.signingKey)
  out.proofs.push(verified.length === 1)
}

if (job.diff) {
  const base = await readCarWithRoot(await fs.readFile(job.diff.base))
  const previous = await Repo.load(new MemoryBlockstore(base.blocks), base.root)
  const diff = await verifyDiffCar(previous, await fs.readFile(job.diff.car), job.did, job.signingKey)
  out.diff = { writes: diff.writes.map((w) => `${w.action} ${w.collection}/${w.rkey}`).sort() }
}

console.log(JSON.stringify(out))
