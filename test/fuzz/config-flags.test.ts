// Fuzzing the config loader's flags and environment (config-load.test.ts
// fuzzes its file): random values never crash it. It returns a
// configuration or throws one TrellisError(E_CONFIG) whose every problem is a
// non-empty line naming where it comes from (a key path, the file, a flag or
// an environment variable); a field set to a wrong value is named.
import t from 'tap';
import fc from 'fast-check';
import { loadConfig } from '../../src/config/load.js';
import { CONFIG_KEYS, envName, flagName } from '../../src/config/schema.js';
import { ErrorCode, TrellisError } from '../../src/errors.js';
import { RUNS, anyText, hostileValue } from './fuzz-inputs.js';

const groups = new Set(CONFIG_KEYS.flatMap((k) => k.path.split('.').slice(0, -1).map((_, i, a) => a.slice(0, i + 1).join('.'))));
const names = [...CONFIG_KEYS.flatMap((k) => [k.path, envName(k.path), `--${flagName(k.path)}`, ...(k.fallbackEnv === undefined ? [] : [k.fallbackEnv])]), ...groups];

function load(options: Parameters<typeof loadConfig>[0]): void {
  try {
    loadConfig(options);
  } catch (err) {
    if (!(err instanceof TrellisError) || err.code !== ErrorCode.Config) throw new Error(`not an E_CONFIG error: ${String(err)}`, { cause: err });
    const problems = (err.details?.problems ?? []) as string[];
    if (problems.length === 0) throw new Error(`E_CONFIG without problems: ${err.message}`);
    for (const p of problems) {
      if (typeof p !== 'string' || p.trim() === '') throw new Error(`empty problem in ${err.message}`);
      if (!names.some((n) => p.includes(n))) throw new Error(`problem names no key, flag or variable: ${p}`);
    }
  }
}

t.test('random flags and environment never crash the loader', async (t) => {
  const key = fc.constantFrom(...CONFIG_KEYS);
  const text = fc.oneof(anyText, hostileValue.map((v) => (typeof v === 'string' ? v : JSON.stringify(v) ?? '')));
  fc.assert(
    fc.property(fc.array(fc.tuple(key, text, fc.boolean()), { maxLength: 4 }), (settings) => {
      const flags = new Map<string, string>([['nodeName', 'node-1']]);
      const env: Record<string, string> = {};
      for (const [k, v, asFlag] of settings) {
        if (asFlag) flags.set(k.path, v);
        else env[envName(k.path)] = v;
      }
      load({ flags, env });
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} inputs`);
});

