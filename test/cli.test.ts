// The CLI end to end on tiny settings (it runs the compiled dist/, which `npm test` builds first).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRecords } from '../lib/metrics/records.js';
import { cli, tempFolder } from './helpers.js';

const dir = tempFolder('cli');

/** The evaluation records of a run folder's metrics stream. */
const evaluations = (run: string) =>
  parseRecords(readFileSync(join(run, 'metrics.jsonl'), 'utf8')).filter((r) => r.kind === 'evaluation');

/** Runs the CLI and sends it Ctrl-C (SIGINT) once its output matches `when`. */
function interruptWhen(when: RegExp, ...args: string[]): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['dist/lib/cli.js', ...args]);
    let output = '';
    let sent = false;
    const guard = setTimeout(() => child.kill('SIGKILL'), 240_000);
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      if (!sent && when.test(output)) {
        sent = true;
        child.kill('SIGINT');
      }
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(guard);
      resolve({ status, output });
    });
  });
}

describe('the CLI', () => {
  it('pretrains, evaluates, samples and post-trains a shapes model with each method', () => {
    const base = join(dir, 'base.safetensors');
    const pretrain = cli('pretrain', '--preset', 'M', '--steps', '3', '--batch', '8', '--out', base);
    expect(pretrain.status, pretrain.err).toBe(0);
    expect(pretrain.out).toMatch(/base, no CFG: strict \d\.\d{3} \(single/);
    expect(pretrain.out).toMatch(/base, CFG 5 at t ≤ 0.6: strict \d\.\d{3}/);
    expect(existsSync(base)).toBe(true);

    const evaluation = cli('eval', '--checkpoint', base, '--samples-per-prompt', '1', '--steps', '4', '--cfg', '2');
    expect(evaluation.status, evaluation.err).toBe(0);
    expect(evaluation.out).toMatch(/test prompts, CFG 2: strict/);
    const limited = cli(
      'eval',
      '--checkpoint',
      base,
      '--samples-per-prompt',
      '1',
      '--steps',
      '4',
      '--cfg',
      '2',
      '--cfg-interval',
      '0,0.6',
    );
    expect(limited.status, limited.err).toBe(0);
    expect(limited.out).toMatch(/test prompts, CFG 2 at t ≤ 0.6: strict/);
    const json = cli('eval', '--checkpoint', base, '--samples-per-prompt', '1', '--steps', '4', '--json');
    expect(json.status, json.err).toBe(0);
    expect(JSON.parse(json.out)).toMatchObject({
      checkpoint: base,
      prompts: 'test',
      cfg: 1,
      strict: expect.any(Number),
      reward: expect.any(Number),
      byCategory: expect.any(Object),
    });

    const png = join(dir, 'grid.png');
    const sampled = cli(
      'sample',
      '--checkpoint',
      base,
      '--prompt',
      'a red circle',
      'two squares',
      '--n',
      '3',
      '--steps',
      '4',
      '--out',
      png,
    );
    expect(sampled.status, sampled.err).toBe(0);
    expect(sampled.out).toMatch(/3 samples each of 'a red circle', 'two squares'/);
    const image = readFileSync(png);
    expect(image.subarray(1, 4).toString()).toBe('PNG');
    // A row of three 16×16 samples (4× scaled, 2 px gaps) for each prompt, with the prompt's text left of it.
    expect(image.readUInt32BE(20)).toBe(2 * 66 + 2);
    expect(image.readUInt32BE(16)).toBeGreaterThan(3 * 66 + 2 + 'a red circle'.length * 6);

    const demo = join(dir, 'demo');
    const ran = cli(
      'demo',
      '--base',
      base,
      '--minutes',
      '0.02',
      '--samples-per-prompt',
      '1',
      '--out',
      demo,
      '--dashboard',
    );
    expect(ran.status, ran.err).toBe(0);
    expect(ran.err).toMatch(/^dashboard: http:\/\/127\.0\.0\.1:\d+\/$/m);
    expect(ran.out).toMatch(/\| base, no CFG \| \*\*\d\.\d{3}\*\*/);
    expect(ran.out).toMatch(/\| base, CFG 5 at t ≤ 0.6 \| \*\*\d\.\d{3}\*\*/);
    expect(ran.out).toContain('DiffusionNFT for 0.02 minutes of training');
    // A progress line for every long phase: the grids, the evaluations, the training.
    for (const phase of [
      'sampling the base, no CFG',
      'sampling the base, CFG 5 at t ≤ 0.6',
      'evaluating the base, no CFG',
      'evaluating the base, CFG 5 at t ≤ 0.6',
      'evaluating epoch 0',
      'nft',
      'sampling after DiffusionNFT',
      'evaluating after DiffusionNFT',
    ]) {
      expect(
        ran.err.split('\n').some((line) => line.startsWith(`${phase} [`)),
        phase,
      ).toBe(true);
    }
    // The run's stream: the base's scores as references, the phases, and its end.
    const records = parseRecords(readFileSync(join(demo, 'run', 'metrics.jsonl'), 'utf8'));
    const references = records.flatMap((r) => (r.kind === 'reference' ? [r.label] : []));
    expect(references).toEqual(['base, no CFG', 'base, CFG 5 at t ≤ 0.6']);
    const phases = records.flatMap((r) => (r.kind === 'progress' ? [r.phase] : []));
    expect(phases.slice(0, 3)).toEqual(['evaluating', 'sampling', 'training']);
    expect(phases.at(-1)).toBe('finished');
    const files = ['summary.md', 'samples-before.png', 'samples-before-cfg.png', 'samples-after.png'];
    for (const file of [...files, 'run/strict-vs-seconds.png']) {
      expect(existsSync(join(demo, file)), file).toBe(true);
    }

    const config = join(dir, 'tiny.json');
    writeFileSync(config, JSON.stringify({ epochs: 1, trainer: { groups: 2, groupSize: 2 } }));
    for (const method of ['nft', 'flowgrpo', 'awm', 'dgpo']) {
      const out = join(dir, method);
      const train = cli(
        'train',
        '--method',
        method,
        '--base',
        base,
        '--config',
        config,
        '--eval-every',
        '1',
        '--micro-batch',
        '5',
        '--out',
        out,
      );
      expect(train.status, train.err).toBe(0);
      expect(train.out).toMatch(/epoch +1 .* strict \(test, no CFG\)/);
      // --micro-batch sets the trainer's microBatch (the resume below takes the default: it bounds memory only).
      expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).trainer.microBatch).toBe(5);
      const files = [
        'checkpoint.safetensors',
        'metrics.jsonl',
        'config.json',
        'samples/epoch-0001.png',
        'strict-vs-epoch.svg',
      ];
      for (const file of [...files, 'reward-vs-seconds.png']) {
        expect(existsSync(join(out, file)), `${method}: ${file}`).toBe(true);
      }
      const resumed = cli(
        'train',
        '--method',
        method,
        '--base',
        join(out, 'checkpoint.safetensors'),
        '--resume',
        '--config',
        config,
        '--epochs',
        '2',
        '--out',
        out,
        '--json',
        '--dashboard',
      );
      expect(resumed.status, resumed.err).toBe(0);
      // --json: stdout is the summary alone, the log and the dashboard's address went to stderr.
      expect(resumed.err).toMatch(/^dashboard: http:\/\/127\.0\.0\.1:\d+\/$/m);
      const summary = JSON.parse(resumed.out);
      expect(summary).toMatchObject({ method, epochs: 2, strict: expect.any(Number), testReward: expect.any(Number) });
      expect(summary.wallSeconds).toBeGreaterThan(0);
      expect(summary.trainingSeconds).toBeGreaterThan(0);
      expect(resumed.err).toMatch(/epoch +2 .* strict \(test, no CFG\)/);
      // The resumed run's curve continues the first one's: epochs and training seconds go on.
      const points = evaluations(out);
      expect(points.map((p) => p.epoch)).toEqual([0, 1, 2]);
      expect(points[2]?.elapsed).toBeGreaterThan(points[1]?.elapsed as number);
    }
  }, 600_000);

  it('saves a checkpoint on Ctrl-C in pretrain and train, and --resume continues the interrupted run', async () => {
    const base = join(dir, 'interrupted-base.safetensors');
    const pretrain = await interruptWhen(
      /pretrain \[/,
      ...['pretrain', '--preset', 'M', '--minutes', '30', '--batch', '8', '--out', base],
    );
    expect(pretrain.status, pretrain.output).toBe(0);
    expect(pretrain.output).toMatch(/interrupted: finishing the current step and saving a checkpoint/);
    expect(pretrain.output).toMatch(/wrote .*interrupted-base\.safetensors: \d+ steps/);

    const config = join(dir, 'interrupted.json');
    writeFileSync(config, JSON.stringify({ trainer: { groups: 2, groupSize: 2 } }));
    const out = join(dir, 'interrupted-run');
    const common = ['--config', config, '--eval-every', '1', '--out', out];
    const train = await interruptWhen(/epoch +1 /, 'train', '--base', base, '--minutes', '30', ...common);
    expect(train.status, train.output).toBe(0);
    expect(train.output).toMatch(/interrupted: finishing the current step/);
    const stopped = evaluations(out).at(-1)?.epoch as number;
    expect(stopped).toBeGreaterThanOrEqual(1);
    const checkpoint = join(out, 'checkpoint.safetensors');
    const resumed = cli('train', '--base', checkpoint, '--resume', '--epochs', String(stopped + 1), ...common);
    expect(resumed.status, resumed.err).toBe(0);
    expect(evaluations(out).at(-1)?.epoch).toBe(stopped + 1);
  }, 600_000);

  it('runs the quick 2-D demo and prints the backends', () => {
    const toy = cli('toy2d', '--steps', '20', '--batch', '64', '--rl-epochs', '2');
    expect(toy.status, toy.err).toBe(0);
    expect(toy.out).toMatch(/toy2d: \d+ parameters, 20 steps of batch 64/);
    expect(toy.out).toMatch(/after DiffusionNFT \(40-step Euler, EMA weights\): mean reward \d\.\d{3}/);
    const info = cli('info');
    expect(info.status, info.err).toBe(0);
    expect(info.out).toMatch(/^CPU: \d+ threads/m);
    const json = cli('info', '--json');
    expect(JSON.parse(json.out)).toMatchObject({ cuda: expect.any(Boolean), threads: expect.any(Number) });
  });

  it('prints its version', () => {
    const version = cli('--version');
    expect(version.status).toBe(0);
    expect(version.out.trim()).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version);
  });

  it('has --help for every command', () => {
    const commands = ['demo', 'toy2d', 'pretrain', 'train', 'eval', 'sample', 'merge', 'export', 'dashboard', 'info'];
    const top = cli('--help');
    expect(top.status).toBe(0);
    for (const command of commands) {
      expect(top.out).toContain(command);
      const help = cli(command, '--help');
      expect(help.status, command).toBe(0);
      expect(help.out).toMatch(new RegExp(`^Usage: diffusion-nft ${command}`));
      expect(help.out).toContain('--help');
    }
  });

  it('answers bad arguments with a usage message and a non-zero exit code', () => {
    const unknown = cli('pretrain', '--bogus');
    expect(unknown.status).not.toBe(0);
    expect(unknown.err).toMatch(/unknown option '--bogus'[\s\S]*Usage: diffusion-nft pretrain/);
    const badNumber = cli('train', '--base', 'x.safetensors', '--epochs', 'many');
    expect(badNumber.status).not.toBe(0);
    expect(badNumber.err).toMatch(/expected an integer/);
    const prompt = cli('sample', '--checkpoint', 'x.safetensors', '--prompt', 'a red sqare');
    expect(prompt.status).toBe(1);
    expect(prompt.err).toMatch(/no shapes prompt 'a red sqare'; close ones: 'a red square'/);
    const cosine = cli('pretrain', '--minutes', '1', '--schedule', 'cosine');
    expect(cosine.status).toBe(1);
    expect(cosine.err).toMatch(/--schedule cosine needs --steps/);
    const schedule = cli('pretrain', '--steps', '1', '--schedule', 'step');
    expect(schedule.status).not.toBe(0);
    expect(schedule.err).toMatch(/--schedule must be 'constant' or 'cosine', got step/);
    const interval = cli('eval', '--checkpoint', 'x.safetensors', '--cfg', '5', '--cfg-interval', '0.7,0.2');
    expect(interval.status).not.toBe(0);
    expect(interval.err).toMatch(/'--cfg-interval <lo,hi>' argument '0.7,0.2' is invalid/);
    const config = join(dir, 'typo.json');
    writeFileSync(config, JSON.stringify({ epochz: 3 }));
    const typo = cli('train', '--base', 'x', '--config', config);
    expect(typo.status).toBe(1);
    expect(typo.err).toMatch(/config .*typo\.json: unknown option 'epochz'/);
    const method = cli('train', '--method', 'ppo', '--base', 'x');
    expect(method.status).not.toBe(0);
    expect(method.err).toMatch(
      /--method must be 'nft', 'flowgrpo', 'awm', 'dgpo', 'grpo-fast', 'mixgrpo' or 'grpo-guard', got ppo/,
    );
  });

  it('checks every value of a config file against the option rules, naming the field', () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['pretrain', { batch: 'big' }, /big\.json: batch must be a number, got string/],
      ['pretrain', { batch: 0 }, /zero\.json: batch must be an integer in \[1, \d+\], got 0/],
      ['pretrain', { schedule: 'step' }, /step\.json: schedule must be 'constant' or 'cosine', got step/],
      ['pretrain', { condDropout: 2 }, /dropout\.json: condDropout must be a number in \[0, 1\], got 2/],
      ['train', { evalEvery: 2.5 }, /every\.json: evalEvery must be an integer/],
      ['train', { out: 3 }, /out\.json: out must be a string, got number/],
    ];
    const names = ['big', 'zero', 'step', 'dropout', 'every', 'out'];
    cases.forEach(([command, content, message], i) => {
      const config = join(dir, `${names[i]}.json`);
      writeFileSync(config, JSON.stringify(content));
      const flags = command === 'pretrain' ? ['--steps', '1'] : ['--base', 'x', '--epochs', '1'];
      const run = cli(command, ...flags, '--config', config);
      expect(run.status, JSON.stringify(content)).toBe(1);
      expect(run.err).toMatch(message);
    });
  });
});
