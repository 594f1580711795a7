// A large topology through the public paths: 8 Root Ports, each leading to a multi-function device of
// 8 ATS functions (buses 1..8, 64 functions), booted, probed, bound and put through a round of ATS DMA
// in lockstep by runScenario; the shared buffer's ECAM window covers only the buses the topology uses;
// and a secondary bus past the ECAM window is refused naming the field.

import { describe, expect, it } from 'vitest';
import { runScenario } from '../src/host/scenario/run.ts';
import { createLockstep } from '../src/host/lockstep.ts';
import { checkScenario } from '../src/protocol/scenario.ts';
import { InputError } from '../src/protocol/check.ts';
import { defaultTopology, parseTopology, TopologyError } from '../src/protocol/topology.ts';
import { DEFAULT_FEATURES } from '../src/arch/smmu/features.ts';
import { ECAM_BUS_BYTES } from '../src/arch/platform.ts';

const hex2 = (n: number) => n.toString(16).padStart(2, '0');

/** 8 Root Ports 00:01.0..00:08.0, secondary buses 1..8, each with functions BB:00.0..BB:00.7. */
const TOPOLOGY_64 = {
  ports: Array.from({ length: 8 }, (_, p) => ({
    bdf: `00:${hex2(p + 1)}.0`,
    secondaryBus: p + 1,
    functions: Array.from({ length: 8 }, (_, f) => ({ bdf: `${hex2(p + 1)}:00.${f}` })),
  })),
};
const BDFS_64 = TOPOLOGY_64.ports.flatMap((p) => p.functions.map((f) => f.bdf));

describe('a topology of 64 ATS functions', () => {
  it('boots in lockstep: every function probed, bound, ATS on, one round of ATS DMA with no error', async () => {
    expect(BDFS_64).toHaveLength(64);
    const s = checkScenario(
      {
        topology: TOPOLOGY_64,
        workload: [{ do: 'ats-dma', rounds: 1 }],
        expect: { errors: 'none', violations: 'none', devices: BDFS_64.map((bdf) => ({ bdf, state: 'ok', atsEnabled: true })) },
      },
      'scenario',
    );
    const r = await runScenario(s, 'topology-64');
    expect(r.problems).toEqual([]);
    expect(r.ok).toBe(true);
    // Judged here too, not only by the scenario's expectation.
    expect(r.devices.map((d) => d.bdf)).toEqual(BDFS_64);
    for (const d of r.devices) expect(d, d.bdf).toEqual({ bdf: d.bdf, state: 'ok', atsEnabled: true, fenced: false, fences: 0, resets: 0 });
    expect(r.errors).toEqual([]);
    expect(r.dmaUseAfterFree).toBe(0);
    expect(r.lostCommands).toBe(0);
    expect(r.duplicatedCommands).toBe(0);
    expect(r.hangs).toBe(0);
    expect(r.faultsInjected).toBe(0);
    expect(r.platformMs).toBeGreaterThan(0);
  });

  it("the shared buffer's ECAM window covers buses 0..8 only (the default topology's 0..2)", () => {
    const big = createLockstep({ features: DEFAULT_FEATURES, topology: parseTopology(TOPOLOGY_64) });
    expect(ECAM_BUS_BYTES).toBe(1 << 20);
    expect(big.views.ecam.byteLength).toBe(9 << 20);
    const small = createLockstep({ features: DEFAULT_FEATURES, topology: defaultTopology() });
    expect(small.views.ecam.byteLength).toBe(3 << 20);
    // No topology given: the default one's.
    expect(createLockstep({ features: DEFAULT_FEATURES }).views.ecam.byteLength).toBe(3 << 20);
    // The window's size follows the highest bus, up to the last one it can hold (bus 15).
    const last = { ports: [{ bdf: '00:01.0', secondaryBus: 15, functions: [{ bdf: '0f:00.0' }] }] };
    expect(createLockstep({ features: DEFAULT_FEATURES, topology: parseTopology(last) }).views.ecam.byteLength).toBe(16 << 20);
  });

  it('a topology naming secondaryBus 16 (past the ECAM window) is refused, naming the field', async () => {
    const bus16 = {
      ports: [
        { bdf: '00:01.0', secondaryBus: 1, functions: [{ bdf: '01:00.0' }] },
        { bdf: '00:02.0', secondaryBus: 16, functions: [{ bdf: '10:00.0' }] },
      ],
    };
    expect(() => parseTopology(bus16)).toThrow(TopologyError);
    expect(() => parseTopology(bus16)).toThrow(/^topology\.ports\[1\]\.secondaryBus: must be an integer from 1 to 15 \(got 16\)$/);
    // Through a scenario: refused before anything boots, as bad input.
    const s = checkScenario({ topology: bus16, workload: [{ do: 'ats-dma', rounds: 1 }] }, 'scenario');
    const run = runScenario(s, 'bus-16');
    await expect(run).rejects.toBeInstanceOf(InputError);
    await expect(run).rejects.toThrow(/topology\.ports\[1\]\.secondaryBus: .*\(got 16\)/);
  });
});
