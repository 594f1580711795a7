// `smmulab replay FILE`: submit the commands of a JSON Lines file verbatim to the command queue after
// probe, and report what the SMMU made of them.
//
// Input format (checked in full before anything boots; every problem is reported as FILE:LINE: reason
// and the exit code is 2):
//   - one JSON object per line, with "w0" and "w1": the command's two 64-bit words (w0 = bits 63:0,
//     holding the opcode in bits 7:0; w1 = bits 127:64), each a string of 1 to 16 hex digits with an
//     optional 0x/0X prefix ("0x46", "0000000000000046"); numbers are refused (JSON numbers cannot
//     hold 64 bits exactly); other fields are ignored;
//   - blank (whitespace-only) lines are skipped but still counted for line numbers; CRLF is accepted;
//   - an empty file is valid and replays nothing.
//
// Run: two CPUs, the SMMU's GERROR interrupt on CPU 1, so that while CPU 0 waits CPU 1's handler fixes
// each illegal command (skip_err overwrites it with a CMD_SYNC) and the queue goes on. CPU 0 issues the
// commands in order, in batches of 64 without syncs, waits until the SMMU has consumed them (for as
// long as CMDQ_CONS keeps moving: thousands of illegal commands take as long as the host needs to run
// CPU 1's handler that often), then issues one CMD_SYNC of its own (drivers/workloads/replay.ts), and
// learns the queue slot of every command.
//
// Output: executedByOpcode counts only the file's commands: the hardware's counts during the replay,
// less the driver's final CMD_SYNC and less the CMD_SYNC skip_err writes over each illegal command
// (the hardware executes those). errors are the command errors the driver handled, mapped back to file
// lines through the slots. syncs = the file's CMD_SYNCs that completed. finalCons = the CMDQ_CONS
// register (with its ERR field) at the end.
// Exit: 0 when the replay completed (architected command errors are results), 2 for bad input,
// 1 when something failed inside (the SMMU stopped consuming, or the final CMD_SYNC timed out): one
// line on stderr, with the kernel log after it under --dmesg.

import { parseCommandArgs, UsageError, type OptSpec } from './args.ts';
import { FEATURES_SPEC, TRACE_SPEC, featuresFromOption, traceFromOption, withProbedSystem } from './boot.ts';
import { TOPOLOGY_SPEC, topologyFromOption } from './topology-option.ts';
import { cerrorsByName, executedByOpcode } from '../stats.ts';
import { CERROR, CERROR_NAMES, OFF } from '../../arch/smmu/regs.ts';
import type { LogEntry } from '../../protocol/log.ts';
import { E, errName } from '../../protocol/errno.ts';
import { DMESG_SPEC, printDmesg, reportLog } from './dmesg.ts';
import { hex } from '../../arch/bits.ts';
import type { CliCommand } from './command.ts';
import { INPUT_LIMITS, parseJsonText, readInputFile } from '../input-file.ts';
import { InputError, clip } from '../../protocol/check.ts';

const NAME = 'replay';
const SUBMIT_CPU = 0;
const IRQ_CPU = 1;
/** Malformed lines listed before the rest are summarised. */
const MAX_REPORTED = 20;

const SPEC: Record<string, OptSpec> = {
  features: FEATURES_SPEC,
  trace: TRACE_SPEC,
  json: { type: 'boolean', help: 'print one JSON object on stdout instead of the text report' },
  dmesg: DMESG_SPEC,
  topology: TOPOLOGY_SPEC,
};

const HEX64 = /^(?:0[xX])?([0-9a-fA-F]{1,16})$/;

export interface ParsedReplay {
  /** Four 32-bit words per command: w0 low, w0 high, w1 low, w1 high. */
  words: number[];
  /** File line (1-based) of each command. */
  lines: number[];
}

/** Parses a replay file's text; throws UsageError listing every malformed line as FILE:LINE: reason. */
export function parseReplay(text: string, file: string): ParsedReplay {
  const words: number[] = [];
  const lines: number[] = [];
  const problems: string[] = [];
  const rows = text.split('\n');
  // A final newline does not start another line.
  if (rows.length > 1 && rows[rows.length - 1] === '') rows.pop();
  rows.forEach((raw, i) => {
    const line = i + 1;
    const bad = (why: string) => problems.push(`${file}:${line}: ${why}`);
    const s = raw.trim();
    if (s === '') return;
    let obj: unknown;
    try {
      obj = parseJsonText(s, `${file}:${line}`);
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      problems.push(e.message);
      return;
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return bad('expected a JSON object with "w0" and "w1"');
    const o = obj as Record<string, unknown>;
    const parsed: bigint[] = [];
    for (const k of ['w0', 'w1'] as const) {
      const v = o[k];
      if (v === undefined) return bad(`missing "${k}"`);
      if (typeof v !== 'string') return bad(`"${k}" must be a hex string such as "0x46" (got ${v === null ? 'null' : typeof v})`);
      const m = HEX64.exec(v);
      if (!m) return bad(`"${k}" is '${clip(v)}', not a 64-bit hex number (1 to 16 hex digits, optional 0x prefix)`);
      parsed.push(BigInt('0x' + m[1]!));
    }
    for (const w of parsed) words.push(Number(w & 0xffffffffn), Number(w >> 32n));
    lines.push(line);
  });
  if (problems.length) {
    const more = problems.length - MAX_REPORTED;
    throw new UsageError([...problems.slice(0, MAX_REPORTED), ...(more > 0 ? [`${file}: ... and ${more} more malformed line(s)`] : [])].join('\n'));
  }
  return { words, lines };
}

export interface ReplayReport {
  file: string;
  profile: string;
  commands: number;
  executedByOpcode: Record<string, number>;
  errors: { line: number | null; cons: number; code: number; name: string }[];
  finalCons: number;
  syncs: number;
  /** With --dmesg: the whole kernel log (probe, command errors and their handling). */
  dmesg?: LogEntry[];
}

export const command: CliCommand = {
  name: NAME,
  summary: 'submit the commands of a JSON Lines file verbatim and report what the SMMU did',
  async run(argv) {
    const p = parseCommandArgs(argv, SPEC, NAME, 'FILE [options]');
    if (!p) return 0;
    if (p.positional.length !== 1) throw new UsageError(`${NAME}: expected exactly one FILE (got ${p.positional.length}); see smmulab replay --help`);
    const file = p.positional[0]!;
    const feat = featuresFromOption(NAME, p.opts.features);
    const input = parseReplay(readInputFile(file, 'replay file', INPUT_LIMITS.replay), file);
    const n = input.lines.length;
    const topology = topologyFromOption(NAME, p.opts.topology);

    const trace = traceFromOption(NAME, p.opts.trace);
    return withProbedSystem(NAME, { cpus: 2, features: feat.features, ...(topology ? { topology } : {}), ...(trace ? { trace } : {}) }, { irqCpu: IRQ_CPU }, async (sys) => {
      const probeLog = await sys.dmesg(); // the probe's log is not part of the report (only of --dmesg)
      // CPU 1's GERROR handler handles the command errors, but a CPU whose CMD_SYNC poll timed out
      // handles a pending one itself: count every CPU's.
      const cpuErrors = () => Promise.all(sys.cpus.map(async (c) => (await c.op('driverStats')).cmdqErrors));
      const errorsBefore = (await cpuErrors()).map((l) => l.length);
      const before = sys.stats();
      // Each illegal command costs an interrupt round trip; allow for large files.
      const res = await sys.cpu(SUBMIT_CPU).op('replay', { words: input.words }, 60_000 + n * 5);
      const after = sys.stats();
      const handled = (await cpuErrors()).map((l, cpu) => l.slice(errorsBefore[cpu]));
      if (res.ret !== 0) {
        const reg = (off: number) => hex(Atomics.load(sys.views.smmu, off >>> 2) >>> 0);
        const why = res.ret === -E.ETIMEDOUT ? 'the SMMU stopped consuming the commands' : `the driver's final CMD_SYNC failed (${errName(res.ret)})`;
        process.stderr.write(`${NAME}: ${why} (CMDQ_CONS ${reg(OFF.CMDQ_CONS)}, CMDQ_PROD ${reg(OFF.CMDQ_PROD)}); the replay is incomplete${p.opts.dmesg === true ? '' : ' (--dmesg prints the kernel log)'}\n`);
        if (p.opts.dmesg === true) printDmesg(reportLog([...probeLog, ...(await sys.dmesg())]));
        return 1;
      }
      // Map each handled error's CONS to the file line: the queue is consumed in order, so search the
      // slots forward from the CPU's previous error (slot values repeat once the queue wraps); then put
      // both CPUs' errors in file order.
      const errors = handled
        .flatMap((list) => {
          let from = 0;
          return list.map((e) => {
            let i = from;
            while (i < n && res.slots[i] !== e.cons) i++;
            if (i < n) from = i;
            return { at: i, line: i < n ? input.lines[i]! : null, cons: e.cons, code: e.code, name: CERROR_NAMES[e.code] ?? `CERROR_${e.code}` };
          });
        })
        .sort((a, b) => a.at - b.at)
        .map(({ at: _, ...e }) => e);
      const executed = executedByOpcode(before, after);
      // The hardware also executed the driver's final CMD_SYNC and one skip_err CMD_SYNC per illegal command.
      const added = 1 + errors.filter((e) => e.code === CERROR.ILL).length;
      const fileSyncs = (executed.SYNC ?? 0) - added;
      if (fileSyncs < 0) throw new Error(`hardware executed ${executed.SYNC ?? 0} CMD_SYNCs, fewer than the ${added} the driver added`);
      if (fileSyncs > 0) executed.SYNC = fileSyncs;
      else delete executed.SYNC;
      const cerrs = cerrorsByName(before, after);
      const hwErrors = Object.values(cerrs).reduce((a, b) => a + b, 0);
      if (hwErrors !== errors.length) throw new Error(`hardware reported ${hwErrors} command error(s) (${JSON.stringify(cerrs)}) but the driver handled ${errors.length}`);
      const report: ReplayReport = {
        file,
        profile: feat.name,
        commands: n,
        executedByOpcode: executed,
        errors,
        finalCons: Atomics.load(sys.views.smmu, OFF.CMDQ_CONS >>> 2) >>> 0,
        syncs: fileSyncs,
      };
      if (p.opts.dmesg === true) {
        report.dmesg = reportLog([...probeLog, ...(await sys.dmesg())]);
        printDmesg(report.dmesg);
      }
      process.stdout.write(p.opts.json === true ? JSON.stringify(report) + '\n' : textReport(report));
      return 0;
    });
  },
};

function textReport(r: ReplayReport): string {
  const out = [`smmulab replay ${r.file}: ${r.commands} command(s), features ${r.profile}`, 'executed (the file\'s commands only):'];
  const names = Object.keys(r.executedByOpcode).sort();
  for (const k of names) out.push(`  ${k.padEnd(18)}${String(r.executedByOpcode[k]).padStart(10)}`);
  if (!names.length) out.push('  (none)');
  out.push(r.errors.length ? 'errors:' : 'errors: none');
  for (const e of r.errors) out.push(`  line ${e.line ?? '?'}: ${e.name} (code ${e.code}) at CONS ${hex(e.cons)}`);
  out.push(`syncs: ${r.syncs}`, `final CMDQ_CONS: ${hex(r.finalCons)}`);
  return out.join('\n') + '\n';
}
