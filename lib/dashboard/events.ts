// The dashboard's server-sent event streams, with bounded memory: at most MAX_STREAMS clients; every message is
// encoded once into a Buffer that all clients' writes share (a run's snapshot of 25 MB stays 25 MB, not 25 MB per
// client); and a client that has not taken in its backlog when the next message is due is dropped, so one that
// never reads holds at most the messages sent before it was found out. A dropped browser page reconnects (the
// stream's `retry`) and gets the runs afresh.
import type { ServerResponse } from 'node:http';
import type { RunSnapshot } from './runs.js';

/** The most event streams served at once; a further one is answered 503. */
export const MAX_STREAMS = 64;

/** Bytes a client may leave unread before the next message: beyond them it is dropped as too slow. */
export const MAX_BACKLOG_BYTES = 4 * 2 ** 20;

/** One event of the stream, encoded. `data` must be one line (JSON is). */
export function eventMessage(event: string, data: string): Buffer {
  return Buffer.from(`event: ${event}\ndata: ${data}\n\n`);
}

/**
 * A run's snapshot as JSON, record by record: a record that cannot be encoded (one nested too deeply for
 * JSON.stringify's recursion) is left out and named in the snapshot's `error`, and the rest of the run still shows.
 */
export function snapshotJson(run: RunSnapshot): string {
  const records: string[] = [];
  const left: number[] = [];
  run.records.forEach((record, i) => {
    try {
      records.push(JSON.stringify(record));
    } catch {
      left.push(i + 1);
    }
  });
  const notes = [run.error, left.length > 0 ? `records ${left.slice(0, 10).join(', ')} cannot be shown` : undefined];
  const error = notes.filter((n) => n !== undefined).join('; ') || undefined;
  let config: string;
  try {
    config = JSON.stringify(run.config) ?? 'null';
  } catch {
    config = 'null';
  }
  const head = JSON.stringify({ id: run.id, name: run.name, dir: run.dir, ...(error ? { error } : {}) });
  // head without its closing brace, then the records and the config already encoded.
  return `${head.slice(0, -1)},"config":${config},"records":[${records.join(',')}]}`;
}

/** The clients of the event stream. */
export class EventClients {
  readonly #clients = new Set<ServerResponse>();

  /** Takes `res` as a client (the server keeps to MAX_STREAMS) and sends it `messages`, the state so far. */
  add(res: ServerResponse, messages: readonly Buffer[]): void {
    this.#clients.add(res);
    res.once('close', () => this.#clients.delete(res));
    for (const message of messages) res.write(message);
  }

  get size(): number {
    return this.#clients.size;
  }

  /** Sends `messages` to every client, first dropping each one that has not taken in what it was sent before. */
  send(messages: readonly Buffer[]): void {
    for (const client of [...this.#clients]) {
      if (client.writableLength > MAX_BACKLOG_BYTES) {
        this.#clients.delete(client);
        client.destroy();
        continue;
      }
      for (const message of messages) client.write(message);
    }
  }

  /** Ends every stream. */
  close(): void {
    for (const client of this.#clients) client.end();
    this.#clients.clear();
  }
}
