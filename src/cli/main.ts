#!/usr/bin/env node
// Registers the command modules and sets the exit code; nothing else.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { EdgetuneError, errorMessage } from '../errors.js';
import { commands } from './commands/index.js';

export async function main(argv: string[]): Promise<number> {
  let exitCode = 0;
  const cli = yargs(argv)
    .scriptName('edgetune')
    .strict()
    .demandCommand(1, 'name a command (see --help)')
    .recommendCommands()
    .help()
    .fail((msg, err) => {
      throw err ?? new EdgetuneError('USAGE', msg);
    });
  for (const c of commands) cli.command(c);
  try {
    await cli.parseAsync();
    exitCode = process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (e) {
    const code = e instanceof EdgetuneError ? e.code : 'ERROR';
    process.stderr.write(`edgetune: ${errorMessage(e)}${code === 'USAGE' ? '\n(run edgetune --help)' : ''}\n`);
    if (process.env.EDGETUNE_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    exitCode = code === 'USAGE' ? 2 : 1;
  }
  return exitCode;
}

const isEntry = process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/\\/g, '/').split('/').pop()!);
if (isEntry) {
  main(hideBin(process.argv)).then((code) => { process.exitCode = code; });
}
