/**
 * Built-in tasks: data, conditions and scores.
 * @module
 */
export * as shapes from './shapes/index.js';
export * as toy2d from './toy2d.js';
