#!/usr/bin/env node
// The command line, `diffusion-nft <command>`: one file per command in lib/cli/, each registering itself here.
import { Command } from 'commander';
import { addDashboardCommand } from './cli/dashboard.js';
import { addDemoCommand } from './cli/demo.js';
import { addEvalCommand } from './cli/eval.js';
import { addExportCommand } from './cli/export.js';
import { addInfoCommand } from './cli/info.js';
import { addMergeCommand } from './cli/merge.js';
import { addPretrainCommand } from './cli/pretrain.js';
import { addSampleCommand } from './cli/sample.js';
import { addToy2dCommand } from './cli/toy2d.js';
import { addTrainCommand } from './cli/train.js';
import { native, packageVersion } from './core/native.js';
import { currentWorld } from './training/distributed.js';

const version = packageVersion();

const program = new Command()
  .name('diffusion-nft')
  .description('Online RL post-training of flow-matching generators (DiffusionNFT, FlowGRPO)')
  .version(version, '-V, --version', 'print the version')
  .showHelpAfterError();

addDemoCommand(program);
addToy2dCommand(program);
addPretrainCommand(program);
addTrainCommand(program);
addEvalCommand(program);
addSampleCommand(program);
addMergeCommand(program);
addExportCommand(program);
addDashboardCommand(program);
addInfoCommand(program);

program.parseAsync().catch((error: unknown) => {
  const { rank, size } = currentWorld();
  const where = size > 1 ? ` (rank ${rank} of ${size})` : '';
  console.error(`error${where}: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
  // The other ranks may be waiting for this one in a collective (or MPI_Finalize): end the whole job now rather than
  // leave them to the collective timeout.
  if (size > 1) native().mpiAbort('ending the job after the error above', 1);
});
