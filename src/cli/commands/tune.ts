import type { Argv, CommandModule } from 'yargs';
import { tune } from '../../tune/tune.js';
import { parseDuration, QUICK_BENCH } from '../../tune/options.js';
import { thisDevice } from '../../targets/this-device.js';
import { formatTuneTable } from '../../tune/format.js';
import { parseShapeFlags } from '../../measure/inputs.js';
import { info, printJson } from '../output.js';
import { infinityAsString } from '../../util/json.js';
import { progressReporter, signalOnInterrupt } from '../progress.js';
import type { TuneBudget } from '../../types.js';
import type { QuantOption } from '../../tune/space.js';
import type { StrategyName } from '../../tune/strategy.js';

interface Args {
  model: string; budgetMs: number; percentile: number; output?: string; result?: string; report?: string | boolean; journal?: string;
  json: boolean; quant?: string[]; threads?: number[]; shape?: string[]; memoryMb?: number; maxAccuracyDrop?: number; minFidelity?: number;
  data?: string; evalSamples?: number; timeLimit?: string; space?: string; strategy: string; keepWork: boolean; quick: boolean;
}

/** Exit code when tuning worked but nothing meets the budget: distinct from errors (1) and usage (2). */
export const EXIT_BUDGET_NOT_MET = 3;

export const tuneCommand: CommandModule<object, Args> = {
  command: 'tune <model>',
  describe: 'Find the most accurate compression of a model that meets a latency budget on this device',
  builder: (y) => y
    .positional('model', { type: 'string', demandOption: true })
    .option('budget-ms', { type: 'number', demandOption: true, describe: 'latency budget in milliseconds' })
    .option('percentile', { type: 'number', choices: [50, 90, 95, 99], default: 90, describe: 'which latency percentile must meet the budget' })
    .option('max-accuracy-drop', { type: 'number', describe: 'with labelled data: largest accepted accuracy drop in points vs fp32 (default 1)' })
    .option('min-fidelity', { type: 'number', describe: 'lowest accepted cosine to the fp32 outputs (default 0.99 without labels)' })
    .option('memory-mb', { type: 'number', describe: 'peak memory limit of the inference process' })
    .option('data', { type: 'string', describe: 'examples for accuracy and calibration (IDX/npy/npz/jsonl/images/test-data); default: a meta.json set beside the model' })
    .option('eval-samples', { type: 'number', describe: 'examples to evaluate quality on (default 1000 from data, 16 generated)' })
    .option('time-limit', { type: 'string', describe: 'stop starting new work after this long (e.g. 10m), then decide' })
    .option('space', { type: 'string', describe: 'JSON file replacing axes of the target\'s search space (docs/tuning.md)' })
    .option('strategy', { type: 'string', choices: ['adaptive', 'exhaustive'], default: 'adaptive' })
    .option('output', { alias: 'o', type: 'string', describe: 'chosen model (default <model>.tuned.onnx)' })
    .option('result', { type: 'string', describe: 'TuneResult JSON path (default <output>.tune.json)' })
    .option('report', { type: 'string', describe: 'HTML report path (default <output>.tune.html; --no-report for none)' })
    .option('journal', { type: 'string', describe: 'trial journal for resuming (default <output>.tune-journal.jsonl)' })
    .option('quant', { type: 'string', array: true, choices: ['fp32', 'dynamic', 'fp16', 'static', 'weight-only-4', 'weight-only-8'], describe: 'restrict the quantization choices' })
    .option('threads', { type: 'number', array: true, describe: 'restrict the thread counts' })
    .option('shape', { type: 'string', array: true, describe: 'input shape, name=1x3x224x224' })
    .option('quick', { type: 'boolean', default: false, describe: 'shorter benchmark per trial (about half as long, less precise): a first look' })
    .option('keep-work', { type: 'boolean', default: false, describe: 'keep the compressed candidates after the tune' })
    .option('json', { type: 'boolean', default: false }) as unknown as Argv<Args>,
  handler: async (a) => {
    const { onProgress, done } = progressReporter({ quiet: a.json });
    const { signal, dispose } = signalOnInterrupt();
    try {
      const { profile, matched } = await thisDevice();
      if (!a.json) info(`device ${profile.id} → target ${matched.target.name}${matched.fallback ? ' (fallback: no specific target matched)' : ''}`);
      const result = await tune({
        device: { id: profile.id, target: matched.target.name }, target: matched.target,
        model: a.model, budgetMs: a.budgetMs, percentile: a.percentile as TuneBudget['percentile'], memoryMB: a.memoryMb,
        maxAccuracyDrop: a.maxAccuracyDrop, minFidelity: a.minFidelity, data: a.data, evalSamples: a.evalSamples,
        ...(a.timeLimit !== undefined ? { timeLimitS: parseDuration(a.timeLimit) } : {}),
        spaceFile: a.space, strategy: a.strategy as StrategyName,
        output: a.output, resultPath: a.result, journalPath: a.journal, keepWork: a.keepWork,
        ...(a.report === false ? { reportPath: false as const } : typeof a.report === 'string' ? { reportPath: a.report } : {}),
        quant: a.quant as QuantOption[] | undefined, threads: a.threads, ...(a.quick ? { bench: QUICK_BENCH } : {}),
        shapes: parseShapeFlags(a.shape ?? []),
      }, { signal, onProgress });
      done();
      if (a.json) printJson(result, infinityAsString); // as in the result file: an exact SQNR is "Infinity", not null
      else info(formatTuneTable(result));
      if (!result.chosen) process.exitCode = EXIT_BUDGET_NOT_MET;
    } finally {
      done();
      dispose();
    }
  },
};
