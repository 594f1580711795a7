// The `linear` profile (IDR1.SIDSIZE 6: a linear stream table of 64 StreamIDs) with the default
// topology, whose endpoints have StreamIDs 0x100 and 0x200. A device whose StreamID the SMMU cannot
// hold is left outside the IOMMU, as Linux leaves it (arm_smmu_probe_device -> arm_smmu_insert_master
// -> arm_smmu_init_sid_strtab fails arm_smmu_sid_in_range with -ERANGE; the firmware glue logs "Adding
// to IOMMU failed" and the device runs without translation). Every command the issue lists ran into
// "StreamID 0x100 is outside the stream table" with a stack trace before.

import { describe, expect, it } from 'vitest';
import { runCli, type CliResult } from './fixtures/run-cli.ts';
import { iommuRig } from './helpers/iommu.ts';
import { pcieStack } from './helpers/pcie-rig.ts';
import { PROFILES } from '../src/arch/smmu/features.ts';
import { IommuError } from '../drivers/iommu/iommu.ts';
import type { LspciJson } from '../src/host/cli/lspci.ts';

const LINEAR = PROFILES.linear!;

/** The command completed: exit 0, no stack trace, no stream table overrun. */
function completed(r: CliResult, what: string): void {
  expect(r.code, `${what}\n${r.stderr}`).toBe(0);
  expect(r.stderr, what).not.toMatch(/^\s+at /m);
  expect(r.stderr, what).not.toContain('outside the stream table');
}

describe('the driver with a 64-entry linear stream table (lockstep)', () => {
  it('arm_smmu_probe_device refuses a StreamID beyond the table with -ERANGE and changes nothing', () => {
    const r = iommuRig({ twoLevelStrtab: false, sidBits: 6 });
    expect(r.iommu.strtab.sidLimit).toBe(64);
    expect(r.iommu.sidOutOfRange([0x3f])).toBe(null);
    expect(r.iommu.sidOutOfRange([0x3f, 0x40])).toBe(0x40);
    let err: unknown;
    try {
      r.iommu.probeDevice('dev', [0x10, 0x100]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(IommuError);
    expect((err as IommuError).code).toBe('ERANGE');
    expect((err as IommuError).message).toBe('dev: StreamID 0x100 is outside the stream table (64 StreamIDs)');
    // StreamID 0x10 was not taken by the failed probe.
    expect(r.iommu.masterBySid(0x10)).toBeUndefined();
    expect(r.iommu.probeDevice('again', [0x10]).sids).toEqual([0x10]);
  });

  it('without IDR0.CD2L a master gets at most CTXDESC_LINEAR_CDMAX (10) SubstreamID bits: a 64 KiB linear CD table', () => {
    const r = iommuRig({ cd2l: false });
    expect(r.dev.shared.ssidBits).toBe(20);
    expect(r.iommu.probeDevice('pasid-dev', [0x20], { ssidBits: 20 }).ssidBits).toBe(10);
    const with2l = iommuRig();
    expect(with2l.iommu.probeDevice('pasid-dev', [0x20], { ssidBits: 20 }).ssidBits).toBe(20);
  });

  it('PCI: the endpoints stay outside the IOMMU, logged with -ERANGE, with PASID and ATS untouched; resets still work', () => {
    const s = pcieStack({ features: LINEAR });
    for (const bdf of ['01:00.0', '02:00.0']) {
      const d = s.core.dev(bdf);
      expect(s.glue.behind(d), bdf).toBe(false);
      expect(d.iommu, bdf).toBe(null);
      expect(d.atsEnabled, bdf).toBe(false);
      // The endpoint driver still binds: it runs without translation.
      expect(d.driver, bdf).toBe(s.drv);
      expect(s.glue.attachDomain(d, s.k.iommu().iommu.allocPaging()), bdf).toBe(-19); // -ENODEV: no iommu_group
    }
    expect(s.log()).toContain("pci 0000:01:00.0: Adding to IOMMU failed: -ERANGE (StreamID 0x100 is beyond the SMMU's 64 StreamIDs)");
    expect(s.log()).toContain("pci 0000:02:00.0: Adding to IOMMU failed: -ERANGE (StreamID 0x200 is beyond the SMMU's 64 StreamIDs)");
  });
});

describe('each command of the issue with --features linear (CLI)', () => {
  it('lspci: the endpoints are listed without an IOMMU domain; --json gives iommu null; --dmesg says why', async () => {
    const t = await runCli(['lspci', '--features', 'linear', '--dmesg'], 120_000);
    completed(t, 'lspci');
    expect(t.stdout).toMatch(/01:00\.0 .*SID 0x0100, driver smmulab-dma, ATS disabled, .*no IOMMU$/m);
    expect(t.stdout).toMatch(/02:00\.0 .*SID 0x0200, .*no IOMMU$/m);
    expect(t.stderr).toMatch(/\] pci 0000:01:00\.0: Adding to IOMMU failed: -ERANGE/);
    const j = await runCli(['lspci', '--features', 'linear', '--json'], 120_000);
    completed(j, 'lspci --json');
    const ep = (JSON.parse(j.stdout) as LspciJson[]).find((d) => d.bdf === '01:00.0')!;
    expect(ep).toMatchObject({ sid: '0x0100', iommu: null, driver: 'smmulab-dma' });
  });

  it('dump-config: the endpoint\'s config space', async () => {
    const r = await runCli(['dump-config', '01:00.0', '--features', 'linear'], 120_000);
    completed(r, 'dump-config');
    expect(r.stdout.split('\n')[0]).toBe('01:00.0 System peripheral: Device 1234:5a11 (rev 01)');
    expect(r.stdout).toMatch(/^00: 34 12 11 5a /m);
  });

  it('reset: succeeds, with no IOMMU blocking to do', async () => {
    const r = await runCli(['reset', '01:00.0', '--method', 'flr', '--features', 'linear', '--json'], 120_000);
    completed(r, 'reset');
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, method: 'flr', rc: 0, depth: 0, blocked: false });
  });

  it('run --workload dma-map: the test engines get StreamIDs the SMMU holds, and their DMA goes through it', async () => {
    const r = await runCli(['run', '--features', 'linear', '--workload', 'dma-map', '--seconds', '0.2', '--json'], 120_000);
    completed(r, 'run --workload dma-map');
    const out = JSON.parse(r.stdout);
    expect(out.check).toBe('OK');
    expect(out.perCpu.map((c: { sid: number }) => c.sid)).toEqual([62, 63]);
    expect(out.dma.transfers).toBeGreaterThan(0);
    expect(out.dma.dataErrors).toBe(0);
    expect(out.translations).toBeGreaterThan(0);
    // More engines than StreamIDs cannot be placed: refused before boot.
    const many = await runCli(['run', '--features', 'linear+sidsize=1', '--cpus', '3', '--workload', 'dma-map']);
    expect(many.code).toBe(2);
    expect(many.stderr.trim()).toBe('run: --workload dma-map needs 3 StreamIDs (one test engine per CPU), the SMMU has 2 (SIDSIZE 1)');
  });

  it('run --workload ats-dma: the endpoints outside the IOMMU sit it out, reported', async () => {
    const r = await runCli(['run', '--features', 'linear', '--workload', 'ats-dma', '--cpus', '1', '--seconds', '0.1', '--json'], 120_000);
    completed(r, 'run --workload ats-dma');
    const out = JSON.parse(r.stdout);
    expect(out.check).toBe('OK');
    expect(out.endpoints).toEqual([]);
    expect(out.dmaErrors).toEqual(['01:00.0: not behind the IOMMU (StreamID 0x100), skipped', '02:00.0: not behind the IOMMU (StreamID 0x200), skipped']);
    expect(out.transfers).toBe(0);
  });
});
