// Config file changes and SIGHUP go through the same path as PUT /config (ConfigStore.apply):
// the config file's directory is watched (editors replace the file rather than write it in
// place), changes are debounced, and a file whose text did not change is not applied again.

import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { ConfigStore } from '../admin/config_store.js';

const WATCH_DEBOUNCE_MS = 200;

export class ConfigReloader {
  private watcher: FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly onHup = (): void => void this.reload('SIGHUP');

  private constructor(
    private readonly file: string,
    private readonly store: Pick<ConfigStore, 'apply'>,
    private readonly log: Logger,
    private lastText: string,
  ) {}

  /** Starts watching the file and listening for SIGHUP. */
  static async start(file: string, store: Pick<ConfigStore, 'apply'>, log: Logger): Promise<ConfigReloader> {
    const r = new ConfigReloader(file, store, log, await readFile(file, 'utf8').catch(() => ''));
    try {
      const base = path.basename(file);
      r.watcher = watch(path.dirname(path.resolve(file)), (_event, name) => {
        if (name !== base) return;
        if (r.timer !== null) clearTimeout(r.timer);
        r.timer = setTimeout(() => void r.reload('file change'), WATCH_DEBOUNCE_MS);
      });
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'cannot watch the config file; use SIGHUP or PUT /config to reload');
    }
    process.on('SIGHUP', r.onHup);
    return r;
  }

  /** Stops watching (drain); SIGHUP still reloads until the process exits. */
  close(): void {
    this.watcher?.close();
    if (this.timer !== null) clearTimeout(this.timer);
  }

  private async reload(why: string): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      this.log.error({ file: this.file, err: (e as Error).message }, 'config file unreadable; running config stays');
      return;
    }
    if (text === this.lastText && why === 'file change') return;
    this.lastText = text;
    const outcome = await this.store.apply({ text }, `${why} of ${this.file}`, 'file');
    if (outcome.ok) this.log.info({ version: outcome.version, summary: outcome.summary }, 'config reloaded');
    else if (outcome.kind === 'invalid') this.log.error({ problems: outcome.problems }, 'config file is invalid; running config stays');
    else this.log.error({ err: outcome.error }, 'config apply failed; running config stays');
  }
}
