import * as shapes from './shapes/index.js';
import * as toy2d from './toy2d.js';

/** Built-in tasks: data, conditions and scores. */
export const tasks = { toy2d, shapes };
