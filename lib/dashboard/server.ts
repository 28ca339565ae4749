// The dashboard's HTTP server (node:http, 127.0.0.1 only): the page and its assets from the package, the named run
// folders' images, and a server-sent event stream that pushes a run's snapshot whenever its files change, and
// whether a process still holds each run (its heartbeat, lib/metrics/heartbeat.ts) whenever that changes.
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { extname, isAbsolute, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { LivenessReader } from '../metrics/heartbeat.js';
import { EventClients, eventMessage, MAX_STREAMS, snapshotJson } from './events.js';
import { openServedFile, type Refusal } from './files.js';
import { ICON, PAGE, STYLE } from './page.js';
import { findRuns, runKey, runNames, snapshot } from './runs.js';
import { samplingRoute } from './sampling.js';

/** Options of startDashboard. */
export interface DashboardOptions {
  /** Run folders, or folders of run folders. */
  folders: readonly string[];
  /** TCP port on 127.0.0.1 (default 0: any free one). */
  port?: number;
  /** How often the run folders are checked for changes, in ms (default 500). */
  pollMs?: number;
}

/** A running dashboard. */
export interface Dashboard {
  /** The page's address, `http://127.0.0.1:<port>/`. */
  url: string;
  /** The TCP port it listens on (the one chosen when `port` was 0). */
  port: number;
  /** Ends the event streams and stops the server. */
  close(): Promise<void>;
}

export const DASHBOARD_HOST = '127.0.0.1';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.jsonl': 'application/x-ndjson',
  '.onnx': 'application/octet-stream',
};

const require = createRequire(import.meta.url);

/** The page's own assets by name. uPlot's are read from its installed package (an exact dependency). */
const ASSETS: Record<string, () => Promise<string | Buffer>> = {
  'uPlot.iife.min.js': () => readFile(require.resolve('uplot/dist/uPlot.iife.min.js')),
  'uPlot.min.css': () => readFile(require.resolve('uplot/dist/uPlot.min.css')),
  'client.js': () => readFile(fileURLToPath(new URL('./client.js', import.meta.url))),
  'dashboard.css': async () => STYLE,
  'icon.svg': async () => ICON,
};

/** The most connections open at once (event streams, file downloads, the page); further ones are closed. */
export const MAX_CONNECTIONS = 256;

/** Milliseconds a file download may make no progress before it is cut (a client that stopped reading). */
const STALLED_MS = 30_000;

const REFUSED: Record<Refusal, [number, string]> = {
  outside: [403, 'forbidden path'],
  'not-regular': [403, 'not a regular file'],
  'too-large': [413, 'file too large'],
  missing: [404, 'not found'],
};

const HEADERS = {
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy': "default-src 'self'; frame-ancestors 'none'",
};

/**
 * The path below a run folder that a request names, or undefined when it is not one to serve: `..` segments,
 * absolute or backslashed paths, or anything resolving outside the folder.
 */
export function safeRelative(raw: string, root: string): string | undefined {
  let path: string;
  try {
    path = decodeURIComponent(raw);
  } catch {
    return undefined;
  }
  if (path === '' || path.includes('\0') || path.includes('\\') || isAbsolute(path)) return undefined;
  if (path.split('/').some((segment) => segment === '..' || segment === '.' || segment === '')) return undefined;
  const full = resolve(root, path);
  return full.startsWith(root + sep) ? full : undefined;
}

/** Serves the dashboard of these run folders on 127.0.0.1 until close(). */
export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  const ids = new Map<string, number>(); // run folder → its id for this server's life
  const messages = new Map<number, { key: string; message: Buffer }>(); // id → its run event when last read
  const liveness = new LivenessReader();
  const held = new Map<number, Buffer>(); // id → its latest 'held' event: whether a process holds the run
  const clients = new EventClients();
  let port = 0;

  const runs = async () => {
    const dirs = await findRuns(o.folders);
    for (const dir of dirs) if (!ids.has(dir)) ids.set(dir, ids.size);
    const names = runNames(dirs);
    return dirs.map((dir, i) => ({ id: ids.get(dir) as number, name: names[i] as string, dir }));
  };
  // Reads again every run whose files changed and sends it to the clients; calls during one share it, so that a
  // run is read once however many clients connect at once. Returns the runs with their current messages.
  let refreshing: Promise<{ list: { id: number; name: string }[]; messages: Buffer[] }> | undefined;
  const refresh = () => {
    refreshing ??= (async () => {
      const list = await runs();
      const changed: Buffer[] = [];
      for (const run of list) {
        const key = await runKey(run.dir);
        if (messages.get(run.id)?.key === key) continue;
        const message = eventMessage('run', snapshotJson(await snapshot(run.id, run.name, run.dir)));
        messages.set(run.id, { key, message });
        changed.push(message);
      }
      for (const run of list) {
        const message = eventMessage('held', JSON.stringify({ id: run.id, held: await liveness.alive(run.dir) }));
        if (held.get(run.id)?.equals(message)) continue;
        held.set(run.id, message);
        changed.push(message);
      }
      if (changed.length > 0) clients.send(changed);
      return {
        list: list.map(({ id, name }) => ({ id, name })),
        messages: list.flatMap((run) => [messages.get(run.id)?.message as Buffer, held.get(run.id) as Buffer]),
      };
    })().finally(() => {
      refreshing = undefined;
    });
    return refreshing;
  };
  const timer = setInterval(() => {
    if (clients.size > 0) void refresh().catch(() => {});
  }, o.pollMs ?? 500);

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const fail = (status: number, text: string) => {
      res.writeHead(status, { ...HEADERS, 'Content-Type': 'text/plain; charset=utf-8' }).end(`${text}\n`);
    };
    // Only this machine's own names: a page elsewhere cannot reach the server through a name it controls.
    const host = req.headers.host ?? '';
    if (host !== `${DASHBOARD_HOST}:${port}` && host !== `localhost:${port}`) return fail(403, 'forbidden host');
    if (req.method !== 'GET' && req.method !== 'HEAD') return fail(405, 'method not allowed');
    const url = req.url ?? '/';
    const path = url.split('?')[0] as string;
    if (!path.startsWith('/') || path.startsWith('//') || /(^|\/)\.\.(\/|$)|%2e|%2f|%5c|\\/i.test(path)) {
      return fail(403, 'forbidden path');
    }
    if (path === '/') {
      return res.writeHead(200, { ...HEADERS, 'Content-Type': TYPES['.html'] }).end(PAGE);
    }
    if (path === '/events') {
      const now = await refresh();
      if (req.socket.destroyed) return; // gone while the runs were read
      if (clients.size >= MAX_STREAMS) {
        res.setHeader('Retry-After', '5');
        res.setHeader('Connection', 'close');
        return fail(503, 'too many dashboard clients');
      }
      res.setTimeout(0); // a stream may be quiet for long; one that stops reading is dropped by its backlog
      res.writeHead(200, { ...HEADERS, 'Content-Type': 'text/event-stream', Connection: 'keep-alive' });
      res.write('retry: 1000\n\n');
      clients.add(res, [eventMessage('runs', JSON.stringify(now.list)), ...now.messages]);
      return;
    }
    const sampling = await samplingRoute(path, new URLSearchParams(url.split('?')[1] ?? ''), runs);
    if (sampling !== undefined) {
      const csp = sampling.csp ?? HEADERS['Content-Security-Policy'];
      const headers = { ...HEADERS, 'Content-Security-Policy': csp, 'Content-Type': sampling.type };
      return res.writeHead(sampling.status, headers).end(sampling.body);
    }
    const asset = /^\/assets\/([A-Za-z.]+)$/.exec(path)?.[1];
    if (asset !== undefined && Object.hasOwn(ASSETS, asset)) {
      const body = await (ASSETS[asset] as () => Promise<string | Buffer>)();
      return res.writeHead(200, { ...HEADERS, 'Content-Type': TYPES[extname(asset)] ?? 'text/plain' }).end(body);
    }
    const file = /^\/runs\/(\d+)\/(.*)$/.exec(path);
    if (file !== null) {
      const dir = [...ids].find(([, id]) => id === Number(file[1]))?.[0];
      if (dir === undefined) return fail(404, 'no such run');
      const full = safeRelative(file[2] as string, dir);
      const type = full === undefined ? undefined : TYPES[extname(full)];
      if (full === undefined || type === undefined) return fail(403, 'forbidden path');
      const opened = await openServedFile(dir, full);
      if (typeof opened === 'string') return fail(...REFUSED[opened]);
      res.setTimeout(STALLED_MS, () => res.destroy());
      res.writeHead(200, { ...HEADERS, 'Content-Type': type, 'Content-Length': opened.size });
      if (req.method === 'HEAD' || opened.size === 0) {
        await opened.handle.close();
        return res.end();
      }
      // autoClose: the stream closes the file however the response ends.
      const body = opened.handle.createReadStream({ start: 0, end: opened.size - 1 });
      return pipeline(body, res).catch(() => res.destroy());
    }
    return fail(404, 'not found');
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(`${(error as Error).message}\n`);
    });
  });
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(o.port ?? 0, DASHBOARD_HOST, () => {
      server.off('error', fail);
      done();
    });
  });
  server.maxConnections = MAX_CONNECTIONS;
  port = (server.address() as AddressInfo).port;
  await runs(); // numbers the runs, so that their files can be served before the page connects
  return {
    url: `http://${DASHBOARD_HOST}:${port}/`,
    port,
    close: async () => {
      clearInterval(timer);
      clients.close();
      await new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      });
    },
  };
}
