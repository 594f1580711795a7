// `smmulab dump-config` decoded by the real `lspci -F` (pciutils, installed by .ci/run): the
// capabilities, FLReset+ and ATSCtl Enable+ of a live function, Enable- / Mem- / BusMaster- after an
// FLR, a Root Port's Type 1 header, and a byte-exact round trip through `lspci -F FILE -xxxx`.
// Without pciutils the checks are skipped with a message naming them (fixtures/lspci.ts), unless
// SMMULAB_REQUIRE_LSPCI=1 (.ci/run) makes that a failure.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from './fixtures/run-cli.ts';
import { lspci as runLspci, lspciGate, skipLspci } from './fixtures/lspci.ts';

const dir = mkdtempSync(join(tmpdir(), 'smmulab-lspci-'));

/** Runs lspci on a dump file. */
function lspci(file: string, ...args: string[]): string {
  return runLspci(['-F', file, ...args]);
}

async function dump(args: string[]): Promise<string> {
  const r = await runCli(['dump-config', ...args], 120_000);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return r.stdout;
}

function save(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

describe('dump-config decoded by lspci -F', () => {
  it('lspci is installed (or, when SMMULAB_REQUIRE_LSPCI is unset, the skipped checks are named)', (ctx) => {
    lspciGate(ctx);
  });

  it.skipIf(skipLspci)('an endpoint: lspci -xxxx format, every capability decoded, FLReset+, ATS enabled', async () => {
    const text = await dump(['01:00.0']);
    const lines = text.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^01:00\.0 /);
    expect(lines).toHaveLength(1 + 256);
    expect(lines[1]).toMatch(/^00: 34 12 11 5a /);
    expect(lines[16]).toMatch(/^f0: /);
    expect(lines[17]).toMatch(/^100: /);
    expect(lines.at(-1)).toMatch(/^ff0: (00 ){15}00$/);
    const out = lspci(save('ep.txt', text), '-vvv');
    expect(out).toMatch(/^01:00\.0 System peripheral: .*1234.*5a11 \(rev 01\)/);
    expect(out).toContain('Control: I/O- Mem+ BusMaster+');
    expect(out).toContain('Region 0: Memory at 10000000 (32-bit, non-prefetchable)');
    expect(out).toContain('Capabilities: [40] Power Management version 3');
    expect(out).toContain('Capabilities: [48] MSI: Enable+ Count=1/1 Maskable- 64bit+');
    expect(out).toContain('Capabilities: [58] Express (v2) Endpoint, MSI 00');
    // FLReset appears twice: Device Capabilities (FLR supported) and Device Control (Initiate FLR, reads 0).
    expect(out).toMatch(/DevCap:[\s\S]*RBE\+ FLReset\+/);
    expect(out).toMatch(/DevCtl:[\s\S]*NoSnoop\+ FLReset-/);
    expect(out).toContain('Capabilities: [100 v2] Advanced Error Reporting');
    expect(out).toContain('Capabilities: [12c v1] Access Control Services');
    expect(out).toContain('Capabilities: [134 v1] Address Translation Service (ATS)');
    expect(out).toContain('ATSCap:\tInvalidate Queue Depth: 08');
    expect(out).toContain('ATSCtl:\tEnable+, Smallest Translation Unit: 00');
    expect(out).toContain('Capabilities: [13c v1] Process Address Space ID (PASID)');
    // The SMMU driver enabled PASID (with the features the capability offers) before ATS.
    expect(out).toContain('PASIDCtl: Enable+ Exec+ Priv+');
    expect(out).toContain('Capabilities: [144 v1] Page Request Interface (PRI)');
    expect(out).toContain('PRISta: RF- UPRGI- Stopped+');
    expect(out).not.toContain('access denied');
    expect(out).not.toContain('chain looped');
    // Byte for byte back through lspci's own -xxxx.
    const back = lspci(save('ep.txt', text), '-xxxx').trimEnd().split('\n');
    expect(back.slice(1)).toEqual(lines.slice(1));
  });

  it.skipIf(skipLspci)('after an FLR: ATS, memory decoding, bus mastering and MSI off, FLR still supported', async () => {
    const out = lspci(save('flr.txt', await dump(['01:00.0', '--after-flr'])), '-vvv');
    expect(out).toContain('Control: I/O- Mem- BusMaster-');
    expect(out).toContain('ATSCtl:\tEnable-, Smallest Translation Unit: 00');
    expect(out).toContain('PASIDCtl: Enable- Exec- Priv-');
    expect(out).toContain('Capabilities: [48] MSI: Enable- Count=1/1');
    expect(out).toMatch(/DevCap:[\s\S]*FLReset\+/);
    expect(out).toMatch(/DevSta:.*TransPend-/);
    // The FLR cleared BAR0: lspci shows no assigned region any more.
    expect(out).not.toContain('Memory at 10000000');
  });

  it.skipIf(skipLspci)('a Root Port: Type 1 header, bus numbers, RRS visibility on, and lspci -t of several dumps', async () => {
    const port = await dump(['00:01.0']);
    const out = lspci(save('port.txt', port), '-vvv');
    expect(out).toContain('PCI bridge: Red Hat, Inc. QEMU PCIe Root port');
    expect(out).toContain('Bus: primary=00, secondary=01, subordinate=01');
    expect(out).toContain('Express (v2) Root Port (Slot-)');
    expect(out).toMatch(/RootCap: CRSVisible\+/);
    expect(out).toMatch(/RootCtl: .*CRSVisible\+/);
    expect(out).toContain('BridgeCtl: Parity- SERR- NoISA- VGA- VGA16- MAbort- >Reset-');
    // The whole default tree, as lspci -t draws it from the dumps.
    const all = [port, ...(await Promise.all(['00:02.0', '01:00.0', '02:00.0'].map((b) => dump([b]))))].join('');
    expect(lspci(save('all.txt', all), '-t').trimEnd()).toBe('-[0000:00]-+-01.0-[01]----00.0\n           \\-02.0-[02]----00.0');
    // A topology file changes what the function reports: Invalidate Queue Depth 32 is encoded as 0.
    const topo = save('t.json', JSON.stringify({ ports: [{ bdf: '00:01.0', secondaryBus: 1, functions: [{ bdf: '01:00.0', invQueueDepth: 32 }] }] }));
    expect(lspci(save('qd.txt', await dump(['01:00.0', '--topology', topo])), '-vvv')).toContain('ATSCap:\tInvalidate Queue Depth: 00');
  });
});
