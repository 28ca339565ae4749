/** The most characters of a value from a file that an error message quotes. */
export const MAX_QUOTED = 200;

/**
 * `text` for an error message: as it is up to MAX_QUOTED characters, else its start and how long it is (a file's
 * name or value can be megabytes long; a message must stay small).
 */
export function excerpt(text: string): string {
  return text.length <= MAX_QUOTED ? text : `${text.slice(0, MAX_QUOTED)}… (${text.length} characters)`;
}

/** Base class of the errors this package throws besides TypeError/RangeError for invalid arguments. */
export class DiffusionNftError extends Error {
  /** A stable machine-readable code, e.g. `DNFT_DISPOSED`. */
  readonly code: string;
  constructor(message: string, code: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A tensor or model was used after `dispose()`. */
export class DisposedError extends DiffusionNftError {
  constructor(what: string) {
    super(`${what} has been disposed`, 'DNFT_DISPOSED');
  }
}

/** Non-finite numbers where finite ones are required (inputs, rewards, a diverged step). */
export class NumericError extends DiffusionNftError {
  constructor(message: string) {
    super(message, 'DNFT_NUMERIC');
  }
}

/** A checkpoint file is missing, corrupt, truncated or does not match the model. */
export class CheckpointError extends DiffusionNftError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, 'DNFT_CHECKPOINT', options);
  }
}

/** One tensor of a state dict that does not fit the network: missing, unexpected, of the wrong shape or dtype, or non-finite. */
export interface StateDictProblem {
  /** The tensor's name, as in the file or in the network's `params`. */
  readonly name: string;
  /**
   * What is wrong: no such tensor in the file, one the network lacks, a wrong shape or dtype, or a non-finite value.
   */
  readonly kind: 'missing' | 'unexpected' | 'shape' | 'dtype' | 'value';
  /** The problem in words, naming the tensor. */
  readonly detail: string;
}

/** The most problems a StateDictError's message lists (its `problems` hold them all). */
const MAX_LISTED = 50;

/** A plain state dict does not fit the network: `problems` lists every tensor at fault, the message the first 50. */
export class StateDictError extends CheckpointError {
  /** Every tensor at fault, in the order found. */
  readonly problems: readonly StateDictProblem[];
  constructor(path: string, problems: readonly StateDictProblem[]) {
    const n = problems.length;
    const listed = problems.slice(0, MAX_LISTED).map((p) => `  ${p.detail}`);
    if (n > MAX_LISTED) listed.push(`  … and ${n - MAX_LISTED} more (see .problems)`);
    super(`${path} does not fit the network (${n} problem${n === 1 ? '' : 's'}):\n${listed.join('\n')}`);
    this.problems = Object.freeze(problems.map((p) => Object.freeze({ ...p })));
  }
}

/** A call that needs the object idle was made while other calls on it are in flight (await them first). */
export class BusyError extends DiffusionNftError {
  constructor(message: string) {
    super(message, 'DNFT_BUSY');
  }
}

/** A reward function threw, rejected, timed out or answered something other than one number per sample. */
export class RewardError extends DiffusionNftError {
  /** The name of the reward that failed. */
  readonly reward: string;
  constructor(reward: string, message: string, options?: ErrorOptions) {
    super(`reward '${reward}' ${message}`, 'DNFT_REWARD', options);
    this.reward = reward;
  }
}

/** The native addon could not be loaded, or a requested backend is not available. */
export class BackendError extends DiffusionNftError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, 'DNFT_BACKEND', options);
  }
}

/** A data-parallel run failed on some rank (docs/distributed.md): every rank throws this, naming that rank. */
export class DistributedError extends DiffusionNftError {
  /** The rank that failed, when one is known. */
  readonly rank: number | undefined;
  constructor(message: string, rank?: number, options?: ErrorOptions) {
    super(message, 'DNFT_DISTRIBUTED', options);
    this.rank = rank;
  }
}

/** A folder of training images is missing, empty, laid out wrongly, or holds a file that cannot be used. */
export class DatasetError extends DiffusionNftError {
  /** The folder or file at fault. */
  readonly path: string;
  constructor(path: string, message: string, options?: ErrorOptions) {
    super(`${path}: ${message}`, 'DNFT_DATASET', options);
    this.path = path;
  }
}

/** Translates an error raised by the native addon into this package's error classes. */
export function fromNative(error: unknown): Error {
  if (!(error instanceof Error) || error instanceof TypeError || error instanceof RangeError) return error as Error;
  if (error instanceof DiffusionNftError) return error;
  const code = (error as { code?: unknown }).code;
  if (code === 'DNFT_DISPOSED') return new DisposedError('the native model');
  if (code === 'DNFT_NUMERIC') return new NumericError(error.message);
  if (code === 'DNFT_BACKEND') return new BackendError(error.message);
  if (code === 'DNFT_DISTRIBUTED') return new DistributedError(error.message);
  if (typeof code === 'string' && code.startsWith('DNFT_')) return new DiffusionNftError(error.message, code);
  return error;
}
