// One worker thread of the `workers` scenario: loads the addon in its own thread and trains its own model.
import { parentPort, workerData } from 'node:worker_threads';
import { trainSmall } from './scenarios.mjs';

parentPort.postMessage(await trainSmall(workerData.seed));
