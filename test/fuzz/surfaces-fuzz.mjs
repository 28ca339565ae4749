// Fuzzer of the loaders besides loadCheckpoint (docs/reliability.md): adapter files (saveAdapter's), PEFT adapter
// folders (adapter_model.safetensors + adapter_config.json), plain state dicts, and image folders. Each input is a
// mutation of a valid base made from its number and the seed alone, loaded by a child process. Every load must
// succeed or throw the surface's error (CheckpointError; DatasetError for image folders), and a rejected adapter
// must leave the network exactly as it was; no crash, no hang, bounded memory.
//   node test/fuzz/surfaces-fuzz.mjs --surface adapter|peft|state-dict|image-folder [--inputs N] [--seed S] ...
// Prints a JSON summary and exits 1 on a finding.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';
import { join8, mutate, split } from './checkpoint-fuzz.mjs';
import { childLoop, fuzzArgs, pick, rng, runFuzz } from './driver.mjs';

const SURFACES = ['adapter', 'peft', 'state-dict', 'image-folder'];
const MLP = { width: 16, depth: 2, mlpRatio: 2, timeFeatures: 8, vocabSize: 5, condSlots: 2 };
const DIT = {
  arch: 'dit',
  dataDim: 16,
  condSlots: 1,
  imageSize: 4,
  channels: 1,
  patch: 2,
  width: 8,
  heads: 2,
  depth: 1,
};
// The image folder's network: 4×4 RGB images of an MLP, up to 3 classes.
const IMAGES = { width: 16, depth: 1, dataDim: 48, vocabSize: 4 };
const ODD = [null, 'x', '', '0x10', '1e3', true, {}, [], [1, [2]], '9'.repeat(30), -0, -1, 0, 2 ** 53, 1e300, 0.5];
const PATTERNS = [
  '(.*.*.*.*.*.*)*X',
  '(a+)+$',
  '(x|x)*y',
  'blocks\\.\\d+\\.(fc1|fc2)',
  '.*fc1',
  'fc1',
  '(?P<n>.*)',
  '(a)\\1',
  '(?=a)',
  '[',
  '\\',
  'x'.repeat(20_000),
  `${'('.repeat(500)}a${')'.repeat(500)}`,
  '.{1000}{1000}',
];

/** A value for a JSON field: an odd one, or a number near the valid ones. */
const oddValue = (r) => pick(r, [...ODD, 1, 2, 4, 8, 64, 1e6]);

/** One mutated safetensors file of `bases` (checkpoint-fuzz's mutations), its `dnft.lora` sometimes rewritten. */
function mutateFile(bases, seed) {
  const r = rng(seed ^ 0x5bd1e995);
  if (r() < 0.25) {
    const { header, data } = split(pick(r, bases));
    const meta = header.__metadata__;
    if (meta['dnft.lora'] !== undefined) {
      const lora = JSON.parse(meta['dnft.lora']);
      const field = pick(r, ['rank', 'alpha', 'targets', 'init', 'extra']);
      lora[field] =
        field === 'targets' ? pick(r, [[], ['fc1', 'fc1'], ['nope'], 'fc1', ['attn.qkv'], oddValue(r)]) : oddValue(r);
      meta['dnft.lora'] = r() < 0.1 ? '['.repeat(100_000) : JSON.stringify(lora);
      return mutate([join8(JSON.stringify(header), data)], seed);
    }
  }
  return mutate(bases, seed);
}

/** One mutated adapter_config.json text. */
function mutateConfig(base, seed) {
  const r = rng(seed ^ 0x27d4eb2f);
  const config = JSON.parse(base);
  const edits = 1 + Math.floor(r() * 3);
  for (let k = 0; k < edits; k++) {
    const how = r();
    if (how < 0.35)
      config.target_modules = r() < 0.8 ? pick(r, PATTERNS) : pick(r, [['fc1'], ['fc1', 'x'], [1], oddValue(r)]);
    else if (how < 0.8) config[pick(r, Object.keys(config))] = oddValue(r);
    else if (how < 0.9) return pick(r, ['', 'null', '[]', '{', '"x"', '['.repeat(200_000), `{"r": ${'['.repeat(100)}`]);
    else delete config[pick(r, Object.keys(config))];
  }
  return JSON.stringify(config);
}

/** A PNG chunk with its CRC. */
function chunk(type, body) {
  const out = Buffer.alloc(12 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.write(type, 4, 'latin1');
  body.copy(out, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + body.length)), 8 + body.length);
  return out;
}

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A PNG of a header (width, height, depth, colour type, interlace) and raw scanline bytes, before mutation. */
function png(width, height, depth, colourType, interlace, raw) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([depth, colourType, 0, 0, interlace], 8);
  const parts = [SIGNATURE, chunk('IHDR', ihdr)];
  if (colourType === 3) parts.push(chunk('PLTE', Buffer.alloc(12, 0x80)));
  parts.push(chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0)));
  return Buffer.concat(parts);
}

/** One mutated PNG: a valid 4×4 or 2×3 image of a random format, then header, chunk, data or byte mutations. */
function mutatePng(seed) {
  const r = rng(seed ^ 0x165667b1);
  const [colourType, depth] = pick(r, [
    [2, 8],
    [6, 8],
    [0, 8],
    [0, 16],
    [2, 16],
    [3, 8],
    [4, 8],
    [0, 1],
  ]);
  const [width, height] = pick(r, [
    [4, 4],
    [2, 3],
    [5, 4],
  ]);
  const samples = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[colourType];
  const row = 1 + Math.ceil((width * samples * depth) / 8);
  const raw = Buffer.alloc(row * height, 0xff);
  for (let y = 0; y < height; y++) raw[y * row] = 0; // filter 0
  const ihdr = [width, height, depth, colourType, 0];
  let body = raw;
  let bytes;
  const ops = [
    () => {
      ihdr[Math.floor(r() * 2)] = pick(r, [0, 1, 3, 5, 4096, 60_000, 2 ** 31 - 1, 2 ** 32 - 1]);
    },
    () => {
      ihdr[2 + Math.floor(r() * 3)] = pick(r, [0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 255]);
    },
    () => {
      body = body.subarray(0, Math.floor(r() * body.length));
    },
    () => {
      body = Buffer.concat([body, Buffer.alloc(1 + Math.floor(r() * 64), 0xff)]);
    },
    () => {
      body = Buffer.from(body);
      body[Math.floor(r() * body.length)] = pick(r, [5, 7, 255, 1, 4]); // filter bytes and samples
    },
  ];
  const bytesOps = [
    () => {
      bytes = bytes.subarray(0, Math.floor(r() * bytes.length));
    },
    () => {
      bytes = Buffer.from(bytes);
      for (let k = 0; k < 1 + r() * 6; k++) bytes[Math.floor(r() * bytes.length)] ^= 1 << Math.floor(r() * 8);
    },
    () => {
      bytes = Buffer.from(bytes);
      bytes.writeUInt32BE(pick(r, [0, 13, 2 ** 31, 2 ** 32 - 1]), pick(r, [8, 33])); // a chunk length
    },
    () => {
      // Corrupt compressed data with a valid CRC: the IDAT replaced by mangled deflate bytes.
      const z = Buffer.from(deflateSync(body));
      for (let k = 2; k < z.length; k++) if (r() < 0.3) z[k] ^= 0x55;
      const at = bytes.indexOf('IDAT') - 4;
      bytes = Buffer.concat([
        bytes.subarray(0, at),
        chunk('IDAT', z),
        bytes.subarray(at + 12 + bytes.readUInt32BE(at)),
      ]);
    },
    () => {
      bytes = Buffer.concat([bytes, Buffer.alloc(Math.floor(r() * 32), 7)]);
    },
  ];
  const count = Math.floor(r() * 3); // 0 to 2: some inputs are valid images of another format or size
  for (let k = 0; k < count; k++) pick(r, ops)();
  bytes = png(...ihdr, body);
  if (r() < 0.5) pick(r, bytesOps)();
  return bytes;
}

/** The files of an image-folder input: class folders of PNGs (one of them mutated), sometimes a stray file. */
function imageFiles(seed) {
  const r = rng(seed ^ 0x3c6ef372);
  const files = {
    'a/0.png': png(4, 4, 8, 2, 0, validRaw(4, 4, 3)),
    'b/x/1.png': png(4, 4, 8, 2, 0, validRaw(4, 4, 3)),
  };
  files[pick(r, ['a/0.png', 'b/x/1.png', 'c/2.png'])] = mutatePng(seed);
  if (r() < 0.05) files['a/notes.txt'] = Buffer.from('x');
  if (r() < 0.05) files['a/empty.png'] = Buffer.alloc(0);
  return files;
}

function validRaw(width, height, samples) {
  const row = 1 + width * samples;
  const raw = Buffer.alloc(row * height, 0x80);
  for (let y = 0; y < height; y++) raw[y * row] = 0;
  return raw;
}

/** The valid bases of a surface, as files in `dir`; returns what the children and the replay need. */
async function writeBases(surface, dir) {
  const lib = await import('../../dist/lib/index.js');
  const { VelocityNet, FlowMatchingTrainer, Tensor, saveAdapter, savePeftAdapter } = lib;
  const { encodeSafetensors } = await import('../../dist/lib/core/safetensors.js');
  const bases = [];
  for (const [name, config] of [
    ['mlp', MLP],
    ['dit', DIT],
  ]) {
    const net = VelocityNet.create(config, { seed: 1 });
    if (surface === 'state-dict') {
      const flat = net.getParameters();
      const tensors = {};
      for (const p of net.params)
        tensors[p.name] = { dtype: 'F32', shape: [...p.shape], data: flat.subarray(p.offset, p.offset + p.size) };
      writeFileSync(join(dir, `${name}.safetensors`), encodeSafetensors(tensors, { format: 'pt' }));
    } else if (surface === 'adapter' || surface === 'peft') {
      const lora = { rank: 2, alpha: 4, seed: 5, targets: name === 'mlp' ? ['fc1', 'ada'] : ['attn.qkv'] };
      const trainer = new FlowMatchingTrainer(net, { lr: 1e-2, seed: 3, lora });
      const rows = 4;
      const cond = Tensor.fromInt32(new Int32Array(rows * net.config.condSlots), [rows, net.config.condSlots]);
      await trainer.step({ x0: Tensor.randn([rows, net.config.dataDim], { seed: 2 }), cond });
      if (surface === 'adapter') await saveAdapter(join(dir, `${name}.safetensors`), net);
      else await savePeftAdapter(join(dir, name), net);
    }
    net.dispose();
    bases.push(name);
  }
  return bases;
}

/** The network of a base (the adapter surfaces load into one with a trained adapter of their own). */
function baseConfig(name) {
  return name === 'dit' ? DIT : MLP;
}

/** Writes input i of a surface into `into` (a file or folder path); returns the base it came from. */
function writeInput(surface, dir, seed, i, into) {
  const r = rng(seed + i);
  if (surface === 'image-folder') {
    rmSync(into, { recursive: true, force: true });
    for (const [path, bytes] of Object.entries(imageFiles(seed + i))) {
      mkdirSync(join(into, path, '..'), { recursive: true });
      writeFileSync(join(into, path), bytes);
    }
    return 'images';
  }
  const base = pick(r, ['mlp', 'dit']);
  if (surface === 'peft') {
    rmSync(into, { recursive: true, force: true });
    mkdirSync(into, { recursive: true });
    const weights = readFileSync(join(dir, base, 'adapter_model.safetensors'));
    const config = readFileSync(join(dir, base, 'adapter_config.json'), 'utf8');
    const which = r();
    writeFileSync(join(into, 'adapter_model.safetensors'), which < 0.5 ? mutateFile([weights], seed + i) : weights);
    writeFileSync(join(into, 'adapter_config.json'), which >= 0.3 ? mutateConfig(config, seed + i) : config);
    return base;
  }
  writeFileSync(into, mutateFile([readFileSync(join(dir, `${base}.safetensors`))], seed + i));
  return base;
}

/** Everything a load may change on a network with adapters. */
function snapshot(net) {
  const lora = net.lora;
  const count = lora?.paramCount ?? 0;
  const theta = new Float32Array(count);
  if (lora !== null) net.model.getAdapter(theta, 'theta');
  const m = new Float32Array(count);
  const v = new Float32Array(count);
  const moments = net.model.hasOptimizerState();
  if (moments && lora !== null) net.model.getOptimizerState(m, v);
  return JSON.stringify([lora, net.step, moments, [...theta], [...m], [...v]]);
}

/** The child: loads the inputs [from, to) of a surface. */
async function child(surface, dir, seed, from, to) {
  const lib = await import('../../dist/lib/index.js');
  const { CheckpointError, DatasetError, VelocityNet } = lib;
  const into = join(
    dir,
    `input-${process.pid}${surface === 'adapter' || surface === 'state-dict' ? '.safetensors' : ''}`,
  );
  const nets = {};
  const netOf = (base) => {
    nets[base] ??= VelocityNet.create(baseConfig(base), { seed: 9, lora: { rank: 3 } });
    return nets[base];
  };
  const imageConfig = VelocityNet.create(IMAGES).config;
  await childLoop(from, to, async (i) => {
    const base = writeInput(surface, dir, seed, i, into);
    const r = rng(seed + i + 0x9e3779b9);
    try {
      if (surface === 'image-folder') {
        await lib.imageFolderDataset(into, imageConfig, { resize: pick(r, ['bilinear', 'reject']) });
        return 'loaded';
      }
      if (surface === 'state-dict') {
        (await lib.loadStateDict(into, baseConfig(base))).dispose();
        return 'loaded';
      }
      const net = netOf(base);
      const before = snapshot(net);
      try {
        await lib.loadAdapter(into, net, surface === 'peft' && r() < 0.1 ? { alpha: 2 } : {});
        return 'loaded';
      } catch (error) {
        if (snapshot(net) !== before) return 'changed the network and then failed';
        throw error;
      }
    } catch (error) {
      const expected = surface === 'image-folder' ? DatasetError : CheckpointError;
      // loadAdapter's own argument check: alpha given for a folder that has its config.
      const argument = error instanceof RangeError && /options\.alpha is for/.test(error.message);
      return error instanceof expected || argument ? 'rejected' : `${error?.constructor?.name}: ${error?.message}`;
    }
  });
}

async function main() {
  const values = fuzzArgs('surfaces', { surface: { type: 'string', default: 'adapter' } });
  const { seed, surface } = values;
  if (!SURFACES.includes(surface)) throw new Error(`--surface must be one of ${SURFACES.join(', ')}`);
  const dir = mkdtempSync(join(tmpdir(), `dnft-fuzz-${surface}-`));
  try {
    await writeBases(surface, dir);
    const { report, clean } = await runFuzz({
      script: fileURLToPath(import.meta.url),
      childArgs: (from, to) => ['--child', surface, dir, String(seed), String(from), String(to)],
      inputs: values.inputs,
      children: values.children,
      batch: 500,
      msPerInput: 2000,
      expected: ['loaded', 'rejected'],
      save: (i, path) => writeInput(surface, dir, seed, i, `${path}-${surface}`),
      out: join(values.out, surface),
    });
    console.log(JSON.stringify({ fuzzer: surface, seed, ...report }));
    process.exitCode = clean ? 0 : 1;
  } finally {
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === '--child') {
    const [surface, dir, seed, from, to] = process.argv.slice(3);
    await child(surface, dir, Number(seed), Number(from), Number(to));
  } else await main();
}
