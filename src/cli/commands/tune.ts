import type { Argv, CommandModule } from 'yargs';
import { tune } from '../../tune/tune.js';
import { thisDevice } from '../../targets/this-device.js';
import { formatTuneTable } from '../../tune/format.js';
import { parseShapeFlag } from '../../measure/inputs.js';
import { info, printJson } from '../output.js';
import { progressReporter, signalOnInterrupt } from '../progress.js';
import type { TuneBudget } from '../../types.js';
import type { QuantChoice } from '../../tune/space.js';

interface Args { model: string; budgetMs: number; percentile: number; output?: string; result?: string; json: boolean; quant?: string[]; threads?: number[]; shape?: string[]; memoryMb?: number }

/** Exit code when tuning worked but nothing meets the budget: distinct from errors (1) and usage (2). */
export const EXIT_BUDGET_NOT_MET = 3;

export const tuneCommand: CommandModule<object, Args> = {
  command: 'tune <model>',
  describe: 'Find the most faithful compression of a model that meets a latency budget on this device',
  builder: (y) => y
    .positional('model', { type: 'string', demandOption: true })
    .option('budget-ms', { type: 'number', demandOption: true, describe: 'latency budget in milliseconds' })
    .option('percentile', { type: 'number', choices: [50, 90, 95, 99], default: 90, describe: 'which latency percentile must meet the budget' })
    .option('memory-mb', { type: 'number', describe: 'peak memory limit of the inference process' })
    .option('output', { alias: 'o', type: 'string', describe: 'chosen model (default <model>.tuned.onnx)' })
    .option('result', { type: 'string', describe: 'TuneResult JSON path (default <output>.tune.json)' })
    .option('quant', { type: 'string', array: true, choices: ['fp32', 'dynamic', 'fp16'], describe: 'restrict the quantization choices' })
    .option('threads', { type: 'number', array: true, describe: 'restrict the thread counts' })
    .option('shape', { type: 'string', array: true, describe: 'input shape, name=1x3x224x224' })
    .option('json', { type: 'boolean', default: false }) as unknown as Argv<Args>,
  handler: async (a) => {
    const { onProgress, done } = progressReporter({ quiet: a.json });
    const { signal, dispose } = signalOnInterrupt();
    try {
      const { profile, matched } = await thisDevice();
      if (!a.json) info(`device ${profile.id} → target ${matched.target.name}${matched.fallback ? ' (fallback: no specific target matched)' : ''}`);
      const result = await tune({
        device: { id: profile.id, target: matched.target.name }, space: matched.target.space,
        model: a.model, budgetMs: a.budgetMs, percentile: a.percentile as TuneBudget['percentile'], memoryMB: a.memoryMb,
        output: a.output, resultPath: a.result, quant: a.quant as QuantChoice[] | undefined, threads: a.threads,
        shapes: Object.fromEntries((a.shape ?? []).map(parseShapeFlag).map((s) => [s.name, s.dims])),
      }, { signal, onProgress });
      done();
      if (a.json) printJson(result);
      else info(formatTuneTable(result));
      if (!result.chosen) process.exitCode = EXIT_BUDGET_NOT_MET;
    } finally {
      done();
      dispose();
    }
  },
};
