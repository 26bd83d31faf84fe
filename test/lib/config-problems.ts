// The configuration errors a text produces, one line each (none: []), for the
// tests of the loader's messages.
import { parseConfig } from '../../server/config/load.js';
import { ConfigError } from '../../server/config/errors.js';

export function configProblems(text: string): string[] {
  try {
    parseConfig(text, 'cfg.yaml');
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  return [];
}
