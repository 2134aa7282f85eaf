// Messages between the agent and a work process (see worker.ts). Plain data only: the task name picks a function
// compiled into the child (tasks.ts), never code carried by a job.
import type { Progress } from '../../types.js';

export type TaskName = 'profile' | 'compress' | 'bench' | 'tune' | 'check-model';

export type ToChild =
  | { kind: 'run'; task: TaskName; args: unknown }
  | { kind: 'abort'; reason: string };

export type FromChild =
  | { kind: 'progress'; progress: Progress }
  | { kind: 'done'; value: unknown }
  | { kind: 'error'; code?: string; name?: string; message: string };
