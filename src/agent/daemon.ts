#!/usr/bin/env node
// The agent as a service: what `edgetune agent` does, from an entry point that loads nothing but the agent (the
// CLI's other commands would cost a device 12 MB of memory it never uses). The systemd unit runs this file.
//   node dist/src/agent/daemon.js [--config FILE] [--broker URL]      (config also from EDGETUNE_CONFIG)
import { fileURLToPath } from 'node:url';
import { EdgetuneError, errorMessage } from '../errors.js';
import { Agent, type AgentContext } from './agent.js';
import { loadConfig } from './config.js';
import { createLogger } from './log.js';

/** Runs until SIGTERM/SIGINT, then stops cleanly (running job interrupted to resume later, retained offline, disconnect). */
export async function runDaemon(ctx: AgentContext): Promise<void> {
  const agent = new Agent(ctx);
  const onSignal = (sig: NodeJS.Signals) => {
    ctx.log.info(`${sig} received`);
    void agent.stop(sig);
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  try {
    await agent.start();
    await agent.stopped;
  } catch (e) {
    await agent.stop('start failed');
    throw e;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}

/** `--config FILE` and `--broker URL`, nothing else: everything else is config or EDGETUNE_* environment. */
export function daemonArgs(argv: string[]): { config?: string; broker?: string } {
  const out: { config?: string; broker?: string } = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.split(/=(.*)/s, 2);
    const value = inline ?? argv[++i];
    if ((flag === '--config' || flag === '-c') && value) out.config = value;
    else if (flag === '--broker' && value) out.broker = value;
    else throw new EdgetuneError('USAGE', `unknown argument '${arg}': the daemon takes --config FILE and --broker URL`);
  }
  return out;
}

async function main(): Promise<void> {
  const args = daemonArgs(process.argv.slice(2));
  const config = await loadConfig({ file: args.config ?? (process.env.EDGETUNE_CONFIG || undefined), overrides: args.broker ? { broker: { url: args.broker } } : undefined });
  await runDaemon({ config, log: createLogger({ level: process.env.EDGETUNE_DEBUG ? 'debug' : config.log.level }) });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e) => {
    process.stderr.write(`edgetune: ${errorMessage(e)}\n`);
    process.exitCode = 1;
  });
}
