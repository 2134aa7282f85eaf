import type { CommandModule } from 'yargs';
import { agentCommand } from './agent.js';
import { benchCommand } from './bench.js';
import { compressCommand } from './compress.js';
import { evalCommand } from './eval.js';
import { fleetCommand } from './fleet.js';
import { inspectCommand } from './inspect.js';
import { profileCommand } from './profile.js';
import { tuneCommand } from './tune.js';
import { sensitivityCommand } from './sensitivity.js';

// One module per command; each handler calls a plain exported function and prints via ../output.ts.
// Commands set process.exitCode for non-error failures (e.g. a tune whose budget cannot be met).
export const commands: CommandModule<any, any>[] = [
  agentCommand,
  benchCommand,
  compressCommand,
  evalCommand,
  fleetCommand,
  inspectCommand,
  profileCommand,
  sensitivityCommand,
  tuneCommand,
];
