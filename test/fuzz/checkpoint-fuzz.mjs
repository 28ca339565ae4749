// Checkpoint fuzzer: structure-aware mutations of valid checkpoints of both architectures (header fields, offsets,
// dtypes, shapes, metadata, truncation, bit flips), loaded by child processes so that a crash is caught and its
// input saved. Every load must succeed or throw a CheckpointError; no crash, no hang, bounded memory.
//   node test/fuzz/checkpoint-fuzz.mjs [--inputs N] [--children C] [--seed S] [--out DIR]
// Prints a JSON summary (count, crashes, hangs, wrong error kinds, max RSS, slowest input) and exits 1 on a finding.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childLoop, fuzzArgs, pick, rng, runFuzz } from './driver.mjs';

const NUMBERS = [-1, 0, 1, 2, 3, 7, 8, 64, 2 ** 31, 2 ** 32 + 4, 2 ** 53, 1e300, -(2 ** 40), 0.5, Number.NaN];
const ODD = [null, 'x', '', '0x10', '1e3', true, {}, [], [1, [2]], '9'.repeat(30), -0];

/** Splits a safetensors file into its parsed header and data section. */
export function split(bytes) {
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')), data: bytes.subarray(8 + n) };
}

export function join8(headerText, data) {
  const json = Buffer.from(headerText);
  const out = Buffer.alloc(8 + json.length + data.length);
  out.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(out, 8);
  data.copy(out, 8 + json.length);
  return out;
}

/** One mutated file from a seed: a valid base of either architecture, changed by 1 to 3 mutations. */
export function mutate(bases, seed) {
  const r = rng(seed);
  const base = pick(r, bases);
  let { header, data } = split(base);
  header = structuredClone(header);
  data = Buffer.from(data);
  let raw; // set by mutations that work on the bytes rather than the structure
  const names = Object.keys(header).filter((k) => k !== '__metadata__');
  const meta = header.__metadata__;
  const ops = [
    () => {
      header[pick(r, names)].dtype = pick(r, ['F16', 'BF16', 'I32', 'F64', 'U8', 'I64', 'F8', 5, null]);
    },
    () => {
      const t = header[pick(r, names)];
      const i = Math.floor(r() * (t.shape.length + 1));
      const how = r();
      if (how < 0.5) t.shape[i] = pick(r, [...NUMBERS, ...ODD]);
      else if (how < 0.75) t.shape.push(pick(r, [1, 2, 0]));
      else t.shape.splice(i, 1);
    },
    () => {
      const t = header[pick(r, names)];
      t.data_offsets[Math.floor(r() * 2)] += pick(r, [-4, 4, 1, -1, 2 ** 31, 2 ** 53]);
    },
    () => {
      const t = header[pick(r, names)];
      t.data_offsets = pick(r, [[0], [1, 0], 'x', null, [0, 0, 0], [-4, 0]]);
    },
    () => {
      delete header[pick(r, names)];
    },
    () => {
      header[`${pick(r, ['', 'optimizer.m.', 'optimizer.v.', 'old.', 'ema.', 'x.'])}${pick(r, names)}`] =
        structuredClone(header[pick(r, names)]);
    },
    () => {
      const key = pick(r, ['dnft.config', 'dnft.step', 'dnft.format', 'dnft.arch', 'dnft.trainer', 'user']);
      meta[key] = pick(r, [
        '',
        '{}',
        '[]',
        'null',
        '{"width": 4096, "depth": 256}',
        '0x10',
        String(2 ** 41),
        'mlp',
        'dit',
      ]);
    },
    () => {
      const config = JSON.parse(meta['dnft.config']);
      config[pick(r, Object.keys(config))] = pick(r, [...NUMBERS, ...ODD]);
      meta['dnft.config'] = JSON.stringify(config);
    },
    () => {
      meta['dnft.config'] = `${'['.repeat(2000 + Math.floor(r() * 50000))}`;
    },
    () => {
      meta[pick(r, Object.keys(meta))] = pick(r, [1, null, {}, ['a']]);
    },
    () => {
      // A non-finite or negative value in the data (second moments must be >= 0).
      const view = new Float32Array(data.buffer, data.byteOffset, Math.floor(data.length / 4));
      view[Math.floor(r() * view.length)] = pick(r, [Number.NaN, Number.POSITIVE_INFINITY, -1, -0, 3e38]);
    },
    () => {
      raw ??= join8(JSON.stringify(header), data);
      raw = raw.subarray(0, Math.floor(r() * raw.length));
    },
    () => {
      raw ??= join8(JSON.stringify(header), data);
      raw = Buffer.concat([raw, Buffer.alloc(1 + Math.floor(r() * 64), 0x20)]);
    },
    () => {
      raw ??= Buffer.from(join8(JSON.stringify(header), data));
      for (let k = 0; k < 1 + r() * 8; k++) {
        // Flips mostly in the header, where they matter most.
        const limit = r() < 0.7 ? Math.min(raw.length, 8 + Number(raw.readBigUInt64LE(0))) : raw.length;
        const at = Math.floor(r() * limit);
        raw[at] ^= 1 << Math.floor(r() * 8);
      }
    },
    () => {
      raw ??= Buffer.from(join8(JSON.stringify(header), data));
      raw.writeBigUInt64LE(BigInt(pick(r, [0, 1, 7, 2 ** 27, 2 ** 40])) + BigInt(Math.floor(r() * 3)), 0);
    },
  ];
  const count = 1 + Math.floor(r() * 3);
  for (let k = 0; k < count; k++) {
    const op = pick(r, ops);
    // Structural mutations only before the first byte-level one.
    if (raw !== undefined && ops.indexOf(op) < ops.length - 4) continue;
    try {
      op();
    } catch {
      // An earlier mutation left nothing for this one to change (e.g. a config that is no longer JSON).
    }
  }
  return raw ?? join8(JSON.stringify(header), data);
}

/** The child: loads the inputs [from, to), each an outcome 'loaded', 'rejected' or the wrong error's kind. */
async function child(dir, seed, from, to) {
  const { CheckpointError, loadCheckpoint } = await import('../../dist/lib/index.js');
  const bases = BASES.map((name) => readFileSync(join(dir, `${name}.safetensors`)));
  const file = join(dir, `input-${process.pid}.safetensors`);
  await childLoop(from, to, async (i) => {
    writeFileSync(file, mutate(bases, seed + i));
    try {
      const { net } = await loadCheckpoint(file);
      net.dispose();
      return 'loaded';
    } catch (error) {
      return error instanceof CheckpointError ? 'rejected' : `${error?.constructor?.name}: ${error?.message}`;
    }
  });
}

const BASES = ['mlp', 'dit', 'mlp-lora'];

/**
 * The valid bases: a trained MLP and a DiT checkpoint, with optimiser state and every parameter set, and an MLP
 * whose LoRA adapters trained (docs/lora.md: the adapter state under `lora.`).
 */
async function writeBases(dir) {
  const { DiffusionNFT, VelocityNet } = await import('../../dist/lib/index.js');
  const mlp = { width: 16, depth: 1 };
  const configs = {
    mlp: [mlp],
    dit: [
      { arch: 'dit', dataDim: 16, condSlots: 1, imageSize: 4, channels: 1, patch: 2, width: 8, heads: 2, depth: 1 },
    ],
    'mlp-lora': [mlp, { rank: 2, alpha: 4, targets: ['fc1', 'ada'] }],
  };
  for (const [name, [config, lora]] of Object.entries(configs)) {
    const net = VelocityNet.create(config, { seed: 1 });
    const trainer = new DiffusionNFT(net, {
      lora,
      prompts: [{ tokens: [1] }],
      rewards: (x) => Array.from({ length: x.shape[0] }, (_, i) => i % 2),
      groups: 1,
      groupSize: 2,
      steps: 2,
      klCoef: 0.1,
    });
    await trainer.epoch();
    await trainer.save(join(dir, `${name}.safetensors`));
    net.dispose();
  }
}

async function main() {
  const values = fuzzArgs('checkpoint');
  const { seed } = values;
  const dir = mkdtempSync(join(tmpdir(), 'dnft-fuzz-ckpt-'));
  try {
    await writeBases(dir);
    const bases = BASES.map((name) => readFileSync(join(dir, `${name}.safetensors`)));
    const { report, clean } = await runFuzz({
      script: fileURLToPath(import.meta.url),
      childArgs: (from, to) => ['--child', dir, String(seed), String(from), String(to)],
      inputs: values.inputs,
      children: values.children,
      batch: 500,
      msPerInput: 2000,
      expected: ['loaded', 'rejected'],
      save: (i, path) => writeFileSync(`${path}.safetensors`, mutate(bases, seed + i)),
      out: values.out,
    });
    const fileBytes = Math.max(...bases.map((b) => b.length));
    console.log(JSON.stringify({ fuzzer: 'checkpoint', seed, baseFileBytes: fileBytes, ...report }));
    process.exitCode = clean ? 0 : 1;
  } finally {
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

// Run as a script (the surfaces fuzzer imports its mutations).
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === '--child') {
    const [dir, seed, from, to] = process.argv.slice(3);
    await child(dir, Number(seed), Number(from), Number(to));
  } else await main();
}
