// The dashboard under hostile run folders and clients (docs/dashboard.md, "What the server serves, and what it
// refuses"; docs/reliability.md): symlinks that lead out of a run folder, FIFOs and devices, a record nested too
// deeply to encode, 200 clients on a 25 MB run and clients that never read, with the server's memory measured.
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_STREAMS } from '../lib/dashboard/events.js';
import { startCli, stopCli } from './cli-process.js';
import { tempFolder } from './helpers.js';

const dir = tempFolder('dashboard-limits');

/** A GET of `path` from the dashboard on `port`: its status, body and how long it took. */
function get(port: number, path: string) {
  const started = performance.now();
  return new Promise<{ status: number; body: string; ms: number }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host: `127.0.0.1:${port}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString(),
          ms: performance.now() - started,
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * The events of the dashboard's stream until `until` holds of them, then the stream is closed; rejects when `ms`
 * pass, or when the server ends the stream, unless `reconnect` (as a browser's EventSource does: a client dropped as
 * too slow comes back; `reconnects` counts it). Blocks are cut from the bytes as they come, so a 25 MB event is read
 * in linear time.
 */
function events(
  port: number,
  until: (seen: { event: string; data: string }[]) => boolean,
  { ms = 60_000, reconnect = false } = {},
) {
  return new Promise<{ seen: { event: string; data: string }[]; reconnects: number }>((resolve, reject) => {
    const seen: { event: string; data: string }[] = [];
    let reconnects = 0;
    let settled = false;
    let req: ReturnType<typeof request>;
    const settle = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      if (error === undefined) resolve({ seen, reconnects });
      else reject(error);
    };
    const open = () => {
      let pending: Buffer[] = [];
      let last = 0; // the last byte of the previous chunk, for a block end that straddles two chunks
      req = request({ host: '127.0.0.1', port, path: '/events', headers: { host: `127.0.0.1:${port}` } }, (res) => {
        res.on('data', (chunk: Buffer) => {
          const before = seen.length;
          // Where each block ends: past a blank line, "\n\n" in the chunk or straddling the previous one and this.
          const next = (at: number) => {
            const i = chunk.indexOf('\n\n', at);
            return i < 0 ? -1 : i + 2;
          };
          let from = 0;
          for (let stop = last === 10 && chunk[0] === 10 ? 1 : next(0); stop >= 0; stop = next(from)) {
            pending.push(chunk.subarray(from, stop));
            const block = Buffer.concat(pending).toString('utf8');
            pending = [];
            from = stop;
            const event = /^event: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (event !== undefined && data !== undefined) seen.push({ event, data });
          }
          pending.push(chunk.subarray(from));
          last = chunk.length > 0 ? (chunk[chunk.length - 1] as number) : last;
          if (seen.length > before && until(seen)) settle();
        });
        res.on('close', () => {
          if (settled) return;
          if (!reconnect) settle(new Error(`the server ended the stream after: ${seen.map((s) => s.event)}`));
          else {
            reconnects++;
            setTimeout(open, 1000);
          }
        });
      });
      req.on('error', (error) => settle(error));
      req.end();
    };
    const timer = setTimeout(
      () => settle(new Error(`the stream did not show what was awaited within ${ms} ms: ${seen.map((s) => s.event)}`)),
      ms,
    );
    open();
  });
}

/** Starts `dashboard folders...` and returns it with its port. */
async function dashboard(...folders: string[]): Promise<{ child: ChildProcess; port: number }> {
  const { child, match } = await startCli(
    ['dashboard', ...folders, '--port', '0'],
    /dashboard: http:\/\/127\.0\.0\.1:(\d+)\//,
  );
  return { child, port: Number(match[1]) };
}

const record = (epoch: number, extra = {}) =>
  `${JSON.stringify({ kind: 'epoch', version: 1, epoch, time: '2026-12-06T00:00:00Z', elapsed: epoch, reward: 0.5, loss: 0.1, ...extra })}\n`;

describe('the dashboard against hostile run folders', () => {
  const run = join(dir, 'run');
  const fifoRun = join(dir, 'fifo-run');
  const deepRun = join(dir, 'deep-run');
  const linkedRun = join(dir, 'linked-run');
  const fifoMetricsRun = join(dir, 'fifo-metrics-run');
  let server: { child: ChildProcess; port: number };

  beforeAll(async () => {
    mkdirSync(join(run, 'samples'), { recursive: true });
    writeFileSync(join(run, 'metrics.jsonl'), record(1));
    writeFileSync(join(run, 'config.json'), '{"lr":0.001}\n');
    writeFileSync(join(dir, 'secret.json'), '{"secret":true}\n');
    writeFileSync(join(dir, 'secret.png'), 'secret');
    symlinkSync('../secret.json', join(run, 'leak.json')); // a file link out
    symlinkSync(dir, join(run, 'out')); // a folder link out
    symlinkSync('/etc/passwd', join(run, 'passwd.json'));
    symlinkSync('/dev/zero', join(run, 'zero.jsonl'));
    symlinkSync('config.json', join(run, 'same.json')); // a link inside the folder: served
    execFileSync('mkfifo', [join(run, 'pipe.json'), join(run, 'samples', 'epoch-0001.png')]);
    // A run whose config.json is a FIFO, and one with a record nested too deeply to encode between two others.
    mkdirSync(fifoRun);
    writeFileSync(join(fifoRun, 'metrics.jsonl'), record(1));
    execFileSync('mkfifo', [join(fifoRun, 'config.json')]);
    mkdirSync(fifoMetricsRun);
    execFileSync('mkfifo', [join(fifoMetricsRun, 'metrics.jsonl')]);
    mkdirSync(deepRun);
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    writeFileSync(
      join(deepRun, 'metrics.jsonl'),
      `${record(1)}${record(2).replace('"loss"', `"x":${deep},"loss"`)}${record(3)}`,
    );
    // A run whose metrics.jsonl and config.json are symlinks to files outside it.
    mkdirSync(linkedRun);
    writeFileSync(join(dir, 'elsewhere.jsonl'), record(1, { secret: true }));
    symlinkSync('../elsewhere.jsonl', join(linkedRun, 'metrics.jsonl'));
    symlinkSync('../secret.json', join(linkedRun, 'config.json'));
    server = await dashboard(run, fifoRun, deepRun, linkedRun, fifoMetricsRun);
  });
  afterAll(async () => {
    await stopCli(server.child);
  });

  it('refuses every symlink that leads out of the run folder, and serves one that stays inside', async () => {
    for (const path of ['leak.json', 'out/secret.json', 'out/secret.png', 'passwd.json', 'zero.jsonl']) {
      const answer = await get(server.port, `/runs/0/${path}`);
      expect(answer.status, path).toBe(403);
      expect(answer.body, path).not.toMatch(/secret|root:/);
    }
    const same = await get(server.port, '/runs/0/same.json');
    expect(same.status).toBe(200);
    expect(same.body).toBe('{"lr":0.001}\n');
  });

  it('refuses FIFOs at once: many requests for them hold no thread, and the server goes on answering', async () => {
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        get(server.port, i % 2 ? '/runs/0/pipe.json' : '/runs/0/samples/epoch-0001.png'),
      ),
    );
    for (const answer of answers) {
      expect(answer.status).toBe(403);
      expect(answer.body).toMatch(/not a regular file/);
      expect(answer.ms).toBeLessThan(10_000);
    }
    expect((await get(server.port, '/runs/0/metrics.jsonl')).status).toBe(200);
  });

  it("streams every run: FIFO run files, a record nested too deeply and run files linked from outside are named in their run's error", async () => {
    const { seen } = await events(server.port, (s) => s.filter((e) => e.event === 'run').length >= 5);
    expect(seen.map((e) => e.data).join('')).not.toMatch(/secret/);
    const runs = seen.filter((e) => e.event === 'run').map((e) => JSON.parse(e.data));
    const [plain, fifo, deep, linked, fifoMetrics] = [0, 1, 2, 3, 4].map((id) => runs.find((r) => r.id === id));
    expect(plain.records).toHaveLength(1);
    expect(plain.config).toEqual({ lr: 0.001 });
    expect(fifo.records).toHaveLength(1);
    expect(fifo.error).toMatch(/config\.json is not a regular file: not read/);
    expect(deep.records.map((r: { epoch: number }) => r.epoch)).toEqual([1, 3]);
    expect(deep.error).toMatch(/metrics\.jsonl line 2: JSON nested deeper than 64 levels/);
    expect(linked.records).toEqual([]);
    expect(linked.config).toBe(null);
    expect(linked.error).toMatch(/metrics\.jsonl leads outside the run folder: not read/);
    expect(linked.error).toMatch(/config\.json leads outside the run folder: not read/);
    expect(fifoMetrics.records).toEqual([]);
    expect(fifoMetrics.error).toMatch(/metrics\.jsonl is not a regular file: not read/);
  });

  it('goes on streaming changes after the deep record, to every client', async () => {
    const waiting = [0, 1].map(() =>
      events(server.port, (s) => s.some((e) => e.event === 'run' && JSON.parse(e.data).records.length === 2)),
    );
    await new Promise((done) => setTimeout(done, 1500));
    appendFileSync(join(run, 'metrics.jsonl'), record(2));
    appendFileSync(join(deepRun, 'metrics.jsonl'), record(4));
    for (const { seen } of await Promise.all(waiting)) expect(seen.at(-1)?.event).toBe('run');
  });
});

/** The server's resident memory now and at its peak, in MiB (Linux's /proc). */
function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1]) / 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

/**
 * A client that sends a GET and never reads the answer; `drain` reads it at last and resolves with the start of
 * the answer once the server has ended it, or 'still open' after 30 s.
 */
function silentClient(port: number, path: string) {
  const socket: Socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  socket.pause();
  let head = '';
  return {
    socket,
    drain: () =>
      new Promise<string>((resolve) => {
        socket.on('data', (chunk: Buffer) => {
          if (head.length < 32) head += chunk.toString('latin1', 0, 32);
        });
        const timer = setTimeout(() => {
          socket.destroy();
          resolve('still open');
        }, 30_000);
        socket.once('close', () => {
          clearTimeout(timer);
          resolve(head.slice(0, 12));
        });
        socket.resume();
      }),
  };
}

describe('the dashboard with 200 clients on a 25 MB run', () => {
  const big = join(dir, 'big');
  // Far above what the server needs (a snapshot is read once and its encoding shared), far below 200 copies.
  const LIMIT_MIB = 1024;
  let server: { child: ChildProcess; port: number };
  let peak = 0;
  let sampler: NodeJS.Timeout;

  beforeAll(async () => {
    mkdirSync(big);
    const rewards = { red: 0.5, green: 0.25, blue: 0.125, shape: 0.75 };
    const lines: string[] = [];
    for (let epoch = 1, bytes = 0; bytes < 25 * 2 ** 20; epoch++) {
      lines.push(record(epoch, { rewards, rewardStd: 0.1, gradNorm: 1.5, lr: 1e-4, step: epoch, samples: 16 }));
      bytes += (lines.at(-1) as string).length;
    }
    writeFileSync(join(big, 'metrics.jsonl'), lines.join(''));
    server = await dashboard(big);
    // The server is stopped when it passes the limit, so a regression fails here rather than taking the machine.
    sampler = setInterval(() => {
      const now = memory(server.child.pid as number);
      peak = Math.max(peak, now.peak);
      if (now.rss > LIMIT_MIB) server.child.kill('SIGKILL');
    }, 50);
  });
  afterAll(async () => {
    clearInterval(sampler);
    await stopCli(server.child);
  });

  it('serves readers, refuses streams past its bound, drops clients that never read, with bounded memory', async () => {
    const size = readFileSync(join(big, 'metrics.jsonl')).length;
    expect(size).toBeGreaterThan(25 * 2 ** 20);
    // 10 clients that read (and come back when dropped, as a page does), 160 event streams and 30 downloads of
    // metrics.jsonl that never read.
    const last = '"epoch":1000001';
    const readers = Array.from({ length: 10 }, () =>
      events(server.port, (s) => s.some((e) => e.event === 'run' && e.data.includes(last)), {
        ms: 120_000,
        reconnect: true,
      }),
    );
    await new Promise((done) => setTimeout(done, 2000));
    const silent = [
      ...Array.from({ length: 160 }, () => silentClient(server.port, '/events')),
      ...Array.from({ length: 30 }, () => silentClient(server.port, '/runs/0/metrics.jsonl')),
    ];
    await new Promise((done) => setTimeout(done, 5000));
    // Two changes: each client still holding its backlog when the next message is due is dropped.
    for (const epoch of [1_000_000, 1_000_001]) {
      appendFileSync(join(big, 'metrics.jsonl'), record(epoch));
      await new Promise((done) => setTimeout(done, 3000));
    }
    expect(server.child.exitCode, `killed past ${LIMIT_MIB} MiB`).toBe(null);
    const read = await Promise.all(readers);
    for (const { seen } of read) expect(JSON.parse(seen.at(-1)?.data as string).records.at(-1).epoch).toBe(1_000_001);
    // Every silent stream was dropped or refused, so each one ends once read; the downloads end whole.
    const heads = await Promise.all(silent.map((c) => c.drain()));
    expect(heads).not.toContain('still open');
    const refused = heads.slice(0, 160).filter((h) => h.startsWith('HTTP/1.1 503')).length;
    expect(refused).toBeGreaterThanOrEqual(160 + 10 - MAX_STREAMS);
    expect(heads.slice(160).every((h) => h.startsWith('HTTP/1.1 200'))).toBe(true);
    const { rss } = memory(server.child.pid as number);
    console.log(
      `dashboard, 200 clients on a ${(size / 2 ** 20).toFixed(1)} MB run: peak RSS ${peak.toFixed(0)} MiB, now ` +
        `${rss.toFixed(0)} MiB; readers dropped as slow and back: ${read.reduce((n, r) => n + r.reconnects, 0)}`,
    );
    expect(peak).toBeLessThan(LIMIT_MIB);
  }, 240_000);
});
