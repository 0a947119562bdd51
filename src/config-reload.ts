/**
 * Live configuration: re-reads the config (and the root keys file) on SIGHUP and whenever a watched file
 * changes, as Kubernetes updates a mounted ConfigMap or Secret, and applies it. A configuration that does not
 * load is refused with a log line and a metric; the one in use keeps serving.
 */
import { type FSWatcher, watch } from 'node:fs';
import path from 'node:path';
import type { App } from './app';
import type { Config } from './config';
import type { Logger } from './logger';

export interface ConfigReloader {
  /** Loads and applies the configuration now; resolves to whether it was applied. */
  reload(): boolean;
  stop(): void;
}

/** Kubernetes swaps a mounted volume's `..data` symlink: several events arrive for one change. */
const SETTLE_MS = 200;

export function watchConfig(
  files: readonly string[],
  load: () => Config,
  app: Pick<App, 'reload' | 'metrics'>,
  logger: Logger,
): ConfigReloader {
  const reload = () => {
    let config: Config;
    try {
      config = load();
    } catch (err) {
      app.metrics.configReload('rejected');
      // ConfigError messages name fields and never carry values; anything else is reported by its kind only.
      logger.error({ error: err instanceof Error ? err.message : String(err) }, 'config reload refused');
      return false;
    }
    const needRestart = app.reload(config);
    app.metrics.configReload('applied');
    logger.info({ restart_needed_for: needRestart }, 'config reloaded');
    return true;
  };

  let timer: NodeJS.Timeout | undefined;
  const soon = () => {
    clearTimeout(timer);
    timer = setTimeout(reload, SETTLE_MS);
  };
  // Directories, not files: a ConfigMap update replaces the file, which ends a watch on the file itself.
  const watchers: FSWatcher[] = [...new Set(files.map((f) => path.dirname(path.resolve(f))))].map((dir) =>
    watch(dir, soon),
  );
  const onHangup = () => reload();
  process.on('SIGHUP', onHangup);

  return {
    reload,
    stop() {
      clearTimeout(timer);
      for (const w of watchers) w.close();
      process.off('SIGHUP', onHangup);
    },
  };
}
