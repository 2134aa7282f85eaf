import type { Argv, CommandModule } from 'yargs';
import type { AgentContext } from '../../agent/agent.js';
import { runDaemon } from '../../agent/daemon.js';
import { loadConfig } from '../../agent/config.js';
import { formatJobResult } from '../../agent/handlers.js';
import { createLogger } from '../../agent/log.js';
import { runOnce } from '../../agent/once.js';
import type { TuneResult } from '../../types.js';
import { printJson } from '../output.js';
import { signalOnInterrupt } from '../progress.js';
import { EXIT_BUDGET_NOT_MET } from './tune.js';

interface Args { once: boolean; config?: string; broker?: string }

export const agentCommand: CommandModule<object, Args> = {
  command: 'agent',
  describe: 'Run the device agent: take jobs over MQTT (starts an embedded broker when none is configured)',
  builder: (y) => y
    .option('once', { type: 'boolean', default: false, describe: 'run the default job from the config through MQTT, print its result, exit' })
    .option('config', { alias: 'c', type: 'string', describe: 'config file (JSON) merged over config/default.json (default: $EDGETUNE_CONFIG)' })
    .option('broker', { type: 'string', describe: 'broker URL, e.g. mqtt://host:1883 (overrides broker.url / EDGETUNE_BROKER_URL)' })
    .epilogue('Every config field can also be set from the environment: EDGETUNE_BROKER_URL, EDGETUNE_FLEET, EDGETUNE_DEVICE_ID, EDGETUNE_STATE_DIR, … (see docs/agent.md)') as unknown as Argv<Args>,
  handler: async (a) => {
    const file = a.config ?? (process.env.EDGETUNE_CONFIG || undefined);
    const config = await loadConfig({ file, overrides: a.broker ? { broker: { url: a.broker } } : undefined });
    // JSON lines whenever stdout is not a terminal: under systemd that is journald.
    const ctx: AgentContext = { config, log: createLogger({ level: process.env.EDGETUNE_DEBUG ? 'debug' : config.log.level }) };
    if (!a.once) {
      await runDaemon(ctx);
      return;
    }
    const { signal, dispose } = signalOnInterrupt();
    try {
      const out = await runOnce(ctx, { signal });
      const table = await formatJobResult(out.job.type, out.result);
      if (table) process.stdout.write(`${table}\npublished on ${out.base}/jobs/${out.job.id}/result\n`);
      else printJson(out.result);
      if (out.job.type === 'tune' && !(out.result as TuneResult).chosen) process.exitCode = EXIT_BUDGET_NOT_MET;
    } finally {
      dispose();
    }
  },
};

export { runDaemon } from '../../agent/daemon.js';
