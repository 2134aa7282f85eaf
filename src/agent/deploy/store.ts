// The models this device runs, on disk under <stateDir>/models:
//   blobs/<sha256>.onnx   immutable model files, named by content (written to staging/, fsynced, renamed in)
//   current.json          which blob is active, which ran before, and an activation not yet confirmed
//   active.onnx           a symlink to the active blob, for the application that runs the model
//   staging/<job>.part    a download in progress (kept across restarts so the job resumes it), and
//   staging/<job>.compressed.onnx; both belong to their job and are collected once it has ended
// current.json is the truth and is replaced atomically; the symlink is derived from it (and repaired at start).
// An activation is first written as pending (Mender's "installed, not committed"): a crash before commit rolls it
// back at the next start, so the device always runs a model that was checked, never a half-switched one.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, readlink, rename, stat, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage, isENOENT } from '../../errors.js';
import type { Recipe } from '../../types.js';
import { fsyncDir, writeFileAtomic } from '../../util/atomic.js';
import type { Logger } from '../log.js';

export interface ModelRecord {
  sha256: string;
  bytes: number;
  name?: string;
  recipe?: Recipe;
  /** When it became active. */
  since: string;
  /** The job that activated it (a re-run of that job after a crash finds its work done). */
  job?: string;
}

interface Slots {
  active?: ModelRecord;
  previous?: ModelRecord;
}

interface StoreState extends Slots {
  v: 1;
  /** Set between activate() and commit(): what to go back to if the activation is not confirmed. */
  pending?: { before: Slots };
}

/** The retained `{base}/deployed` document (DESIGN.md §5; the fleet's DeployedDoc). */
export interface DeployedDoc {
  v: 1;
  model: { sha256: string; path: string; bytes: number };
  name?: string;
  recipe?: Recipe;
  since: string;
  job?: string;
  previous?: { model: { sha256: string; path: string; bytes: number }; name?: string; recipe?: Recipe; since: string };
}

export async function sha256File(path: string, signal?: AbortSignal): Promise<{ sha256: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path, { signal })) {
    h.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: h.digest('hex'), bytes };
}

export interface ModelStoreOptions {
  /**
   * Ids of the jobs still queued or running. With it, gc() removes staging files of any other job (a failed or
   * canceled download would otherwise stay forever); without it, staging files are kept.
   */
  liveJobs?: () => Iterable<string>;
}

const STAGING_SUFFIX = { part: '.part', compressed: '.compressed.onnx' } as const;

export class ModelStore {
  readonly dir: string;
  readonly blobs: string;
  readonly staging: string;
  readonly activeLink: string;
  private readonly stateFile: string;
  private state: StoreState = { v: 1 };

  constructor(stateDir: string, private readonly log: Logger, private readonly opts: ModelStoreOptions = {}) {
    this.dir = join(stateDir, 'models');
    this.blobs = join(this.dir, 'blobs');
    this.staging = join(this.dir, 'staging');
    this.activeLink = join(this.dir, 'active.onnx');
    this.stateFile = join(this.dir, 'current.json');
  }

  get active(): ModelRecord | undefined {
    return this.state.active;
  }

  get previous(): ModelRecord | undefined {
    return this.state.previous;
  }

  get pending(): boolean {
    return this.state.pending !== undefined;
  }

  blobPath(sha256: string): string {
    return join(this.blobs, `${sha256}.onnx`);
  }

  /** Where job `job` keeps its download (`part`) or its on-device compression output. */
  stagingPath(job: string, kind: keyof typeof STAGING_SUFFIX): string {
    return join(this.staging, `${job}${STAGING_SUFFIX[kind]}`);
  }

  /** Removes what job `job` staged (it has ended and will not resume). */
  async discardStaging(job: string): Promise<void> {
    for (const kind of Object.keys(STAGING_SUFFIX) as Array<keyof typeof STAGING_SUFFIX>) await unlink(this.stagingPath(job, kind)).catch(() => {});
  }

  /**
   * Reads the state and repairs what a crash can leave: an unconfirmed activation is rolled back, the symlink
   * re-pointed, temp files removed, unreferenced blobs deleted. Returns the record that was rolled back, if any.
   */
  async load(): Promise<{ rolledBack?: ModelRecord }> {
    await mkdir(this.blobs, { recursive: true });
    await mkdir(this.staging, { recursive: true });
    try {
      const doc = JSON.parse(await readFile(this.stateFile, 'utf8')) as StoreState;
      if (doc?.v !== 1) throw new Error('not a model store state (v must be 1)');
      this.state = doc;
    } catch (e) {
      if (!isENOENT(e)) {
        this.log.error(`cannot read ${this.stateFile}; starting with no active model`, { error: errorMessage(e) });
        await rename(this.stateFile, `${this.stateFile}.corrupt`).catch(() => {});
      }
      this.state = { v: 1 };
    }
    let rolledBack: ModelRecord | undefined;
    if (this.state.pending) {
      rolledBack = this.state.active;
      this.log.warn('an activation was not confirmed before the agent stopped; rolling back', { model: rolledBack?.sha256 });
      await this.write({ v: 1, ...this.state.pending.before });
    }
    // A blob that vanished or changed (disk trouble) must not stay active.
    for (const slot of ['active', 'previous'] as const) {
      const rec = this.state[slot];
      if (rec && !(await this.blobIntact(rec))) {
        this.log.error(`the ${slot} model ${rec.sha256} is missing or damaged on disk; forgetting it`);
        const next = { ...this.state };
        delete next[slot];
        if (slot === 'active' && next.previous) {
          next.active = next.previous;
          delete next.previous;
        }
        await this.write(next);
      }
    }
    await this.pointLink();
    for (const name of await readdir(this.dir)) if (name.endsWith('.tmp')) await unlink(join(this.dir, name)).catch(() => {});
    await this.gc();
    return rolledBack ? { rolledBack } : {};
  }

  has(sha256: string): Promise<boolean> {
    return stat(this.blobPath(sha256)).then((s) => s.isFile(), () => false);
  }

  /** Moves a verified file (in staging/) into blobs/ under its hash. */
  async importFile(path: string, sha256: string): Promise<string> {
    const dest = this.blobPath(sha256);
    if (await this.has(sha256)) {
      await unlink(path).catch(() => {});
      return dest;
    }
    const fh = await open(path, 'r+');
    try { await fh.sync(); } finally { await fh.close(); }
    await rename(path, dest);
    await fsyncDir(this.blobs);
    return dest;
  }

  /** Makes `rec` active, pending confirmation; the old active one becomes previous. */
  async activate(rec: ModelRecord): Promise<void> {
    const before: Slots = { active: this.state.active, previous: this.state.previous };
    const previous = this.state.active && this.state.active.sha256 !== rec.sha256 ? this.state.active : this.state.previous;
    await this.write({ v: 1, active: rec, ...(previous ? { previous } : {}), pending: { before } });
    await this.pointLink();
  }

  /** Confirms the pending activation. */
  async commit(): Promise<void> {
    if (!this.state.pending) return;
    const { pending: _p, ...rest } = this.state;
    await this.write(rest);
    await this.gc();
  }

  /** Undoes the pending activation. */
  async rollbackPending(): Promise<void> {
    if (!this.state.pending) return;
    await this.write({ v: 1, ...this.state.pending.before });
    await this.pointLink();
    await this.gc();
  }

  /** Swaps active and previous (a `rollback` job); false when there is no previous. */
  async rollback(job?: string, now = new Date()): Promise<boolean> {
    const { active, previous } = this.state;
    if (!previous) return false;
    await this.write({ v: 1, active: { ...previous, since: now.toISOString(), ...(job ? { job } : {}) }, ...(active ? { previous: active } : {}) });
    await this.pointLink();
    return true;
  }

  deployedDoc(): DeployedDoc | undefined {
    const { active, previous } = this.state;
    if (!active) return undefined;
    const model = (r: ModelRecord) => ({ sha256: r.sha256, path: this.blobPath(r.sha256), bytes: r.bytes });
    const extra = (r: ModelRecord) => ({ ...(r.name ? { name: r.name } : {}), ...(r.recipe ? { recipe: r.recipe } : {}) });
    return {
      v: 1,
      model: model(active),
      ...extra(active),
      since: active.since,
      ...(active.job ? { job: active.job } : {}),
      ...(previous ? { previous: { model: model(previous), ...extra(previous), since: previous.since } } : {}),
    };
  }

  /**
   * Deletes blobs nothing refers to (a failed candidate, a model two deploys old), torn temp files, and the staging
   * files of jobs that are no longer queued or running (when the store knows which are: ModelStoreOptions).
   */
  async gc(): Promise<void> {
    const keep = new Set<string>();
    const refs = [this.state.active, this.state.previous, this.state.pending?.before.active, this.state.pending?.before.previous];
    for (const r of refs) if (r) keep.add(`${r.sha256}.onnx`);
    for (const name of await readdir(this.blobs)) {
      if (!keep.has(name)) await unlink(join(this.blobs, name)).catch(() => {});
    }
    const live = this.opts.liveJobs ? new Set(this.opts.liveJobs()) : undefined;
    for (const name of await readdir(this.staging)) {
      if (name.endsWith('.tmp') || (live && !live.has(stagingOwner(name) ?? ''))) {
        if (!name.endsWith('.tmp')) this.log.info('removing a staging file of a job that has ended', { file: name });
        await unlink(join(this.staging, name)).catch(() => {});
      }
    }
  }

  private async blobIntact(rec: ModelRecord): Promise<boolean> {
    try {
      const s = await stat(this.blobPath(rec.sha256));
      // Size only: hashing every model at every start is too slow for big models; the deploy hashed it once.
      return s.isFile() && s.size === rec.bytes;
    } catch {
      return false;
    }
  }

  private async write(next: StoreState): Promise<void> {
    await writeFileAtomic(this.stateFile, JSON.stringify(next, null, 1));
    this.state = next;
  }

  /** Re-points active.onnx at the active blob: a new symlink renamed over the old one (atomic). */
  private async pointLink(): Promise<void> {
    const target = this.state.active ? join('blobs', `${this.state.active.sha256}.onnx`) : undefined;
    const current = await readlink(this.activeLink).catch(() => undefined);
    if (current === target) return;
    if (!target) {
      await unlink(this.activeLink).catch(() => {});
      await fsyncDir(this.dir);
      return;
    }
    const tmp = join(this.dir, `.active.${process.pid}.${Date.now()}.tmp`);
    await symlink(target, tmp);
    await rename(tmp, this.activeLink);
    await fsyncDir(this.dir);
  }
}

/** The job a staging file belongs to (job ids may hold dots, so the known suffix is cut off, not split on). */
function stagingOwner(name: string): string | undefined {
  for (const suffix of Object.values(STAGING_SUFFIX)) if (name.endsWith(suffix) && name.length > suffix.length) return name.slice(0, -suffix.length);
  return undefined;
}
