// Fuzzing the CNI plugin's input parsing: the CNI_* environment and the
// network configuration on stdin. Whatever the runtime hands over, the parser
// returns or throws a CniError with a CNI error code and a non-empty message;
// nothing else escapes (the plugin would print it as an internal error 999).
import t from 'tap';
import fc from 'fast-check';
import { CniError, Code, allocateRequest, parseConf, readEnv, type Command } from '../../cni-plugin/cni.js';
import { RUNS, anyText, hostileValue, mutate, mutationArb, spellings } from './fuzz-inputs.js';

const codes = new Set<number>(Object.values(Code));
const commands: Command[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'];

/** Run `f`; a CniError with a known code and a message is fine, anything else fails the property. */
function parsed<T>(what: string, f: () => T): T | CniError {
  try {
    return f();
  } catch (err) {
    if (!(err instanceof CniError)) throw new Error(`${what}: not a CniError: ${String(err)}`, { cause: err });
    if (!codes.has(err.code) || err.code === Code.Internal) throw new Error(`${what}: unexpected code ${err.code}: ${err.message}`);
    if (err.message.trim() === '') throw new Error(`${what}: empty message`);
    return err;
  }
}

const validEnv = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c0ffee', CNI_NETNS: '/var/run/netns/p', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', CNI_ARGS: 'K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web' };
const envFields = Object.keys(validEnv);

t.test('random CNI_* environments never crash the parser; a refusal names the variable', async (t) => {
  const value = fc.oneof(anyText, fc.constantFrom('ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION', '', '.', '..', 'a'.repeat(16), '=x', ';;', '__proto__=1'));
  fc.assert(
    fc.property(fc.constantFrom(...envFields), value, fc.constantFrom(...envFields), value, (k1, v1, k2, v2) => {
      const env: Record<string, string> = { ...validEnv, [k1]: v1, [k2]: v2 };
      const r = parsed('readEnv', () => readEnv(env));
      if (r instanceof CniError) {
        if (r.code !== Code.InvalidEnvironment) throw new Error(`readEnv refused with code ${r.code}`);
        const said = `${r.message} ${r.details}`;
        if (!/CNI_|containerID|interface name/.test(said)) throw new Error(`refusal names no variable: ${said}`);
      } else if (r.command === 'ADD') {
        allocateRequest(r, { name: 'trellis' } as Parameters<typeof allocateRequest>[1]);
      }
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} inputs`);
});

const validConf = { cniVersion: '1.1.0', name: 'trellis', type: 'trellis', socket: '/run/trellis/trellisd.sock', timeoutMs: 10000, mtu: 1500, prevResult: {} };
const confFields = ['cniVersion', 'name', 'type', 'socket', 'timeoutMs', 'mtu', 'prevResult', 'ipam', 'ipam.type', 'ipam.socket', 'cni.dev/valid-attachments'];

t.test('random and near-valid stdin never crash the parser; a wrong field is named', async (t) => {
  const stdin = fc.oneof(
    anyText.map((text) => ({ text, field: undefined as string | undefined })),
    mutationArb(confFields).map((m) => ({ text: mutate(validConf, m), field: m.kind === 'set' ? m.field : undefined })),
  );
  fc.assert(
    fc.property(stdin, fc.constantFrom(...commands), ({ text, field }, command) => {
      const r = parsed(`parseConf ${command}`, () => parseConf(text, command));
      if (!(r instanceof CniError) || field === undefined) return;
      const said = `${r.message} ${r.details}`;
      const named = spellings(field).some((s) => said.includes(s)) || /network name|CNI version|cniVersion|decoding network config|valid-attachments|ipam/i.test(said);
      if (!named) throw new Error(`${field}: refusal names no field: ${said}`);
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} inputs`);
});

t.test('hostile values in every field of the configuration', async (t) => {
  fc.assert(
    fc.property(fc.dictionary(fc.constantFrom(...confFields, 'ipam'), hostileValue), fc.constantFrom(...commands), (extra, command) => {
      parsed('parseConf', () => parseConf(JSON.stringify({ ...validConf, ...extra }), command));
    }),
    { numRuns: Math.ceil(RUNS / 10) },
  );
  t.pass(`${Math.ceil(RUNS / 10)} inputs`);
});
