// --features: profiles, +feature/-feature toggles, and widths set as +name=N (the ID register field's
// name or the feature's key); the default profile's SubstreamID width.

import { describe, expect, it } from 'vitest';
import { DEFAULT_FEATURES, PROFILES, WIDTH_FEATURES, parseFeatures } from '../src/arch/smmu/features.ts';
import { runCli } from './fixtures/run-cli.ts';

describe('parseFeatures', () => {
  it('the default profile has 20-bit SubstreamIDs, the endpoints\' PASID width (Arm BSA PCI_PAS_1)', () => {
    expect(DEFAULT_FEATURES.ssidBits).toBe(20);
    expect(parseFeatures('default').features.ssidBits).toBe(20);
  });

  it('sets widths by ID register field or by key, in any case, with toggles around them', () => {
    expect(parseFeatures('default+ssidsize=16').features.ssidBits).toBe(16);
    expect(parseFeatures('default+SSIDSIZE=0').features.ssidBits).toBe(0);
    expect(parseFeatures('default+ssidBits=8').features.ssidBits).toBe(8);
    // ',' stands for '+'.
    expect(parseFeatures('default,ssidsize=12').features.ssidBits).toBe(12);
    const f = parseFeatures('qemu-like+sidsize=12-cd2l+cmdqs=0x8+oas=44').features;
    expect({ sidBits: f.sidBits, cd2l: f.cd2l, cmdqLog2: f.cmdqLog2, oasBits: f.oasBits, stage2: f.stage2 }).toEqual({ sidBits: 12, cd2l: false, cmdqLog2: 8, oasBits: 44, stage2: false });
    expect(parseFeatures('linear+sidsize=4').features).toEqual({ ...PROFILES.linear!, sidBits: 4 });
    expect(parseFeatures('default+ssidsize=16').name).toBe('default+ssidsize=16');
    // Every width names a numeric feature.
    for (const k of Object.keys(WIDTH_FEATURES)) expect(typeof DEFAULT_FEATURES[k as keyof typeof WIDTH_FEATURES]).toBe('number');
  });

  it('refuses unknown widths, bad values, a width after "-", and widths the architecture forbids', () => {
    expect(() => parseFeatures('default+ssid=4')).toThrow("--features: '+ssid=4' names no width (known: sidsize (sidBits), ssidsize (ssidBits), cmdqs (cmdqLog2), eventqs (eventqLog2), priqs (priqLog2), oas (oasBits))");
    expect(() => parseFeatures('default+ssidsize=x')).toThrow("'x' is not a non-negative integer");
    expect(() => parseFeatures('default+ssidsize=-1')).toThrow("'+ssidsize=': '' is not a non-negative integer");
    expect(() => parseFeatures('default-ssidsize=4')).toThrow('a width is set with +ssidsize=4');
    expect(() => parseFeatures('default+ssidsize=21')).toThrow('ssidBits: must be 0..20 (IDR1.SSIDSIZE)');
    expect(() => parseFeatures('linear+sidsize=7')).toThrow('SIDSIZE 7 >= 7 requires the 2-level stream table');
    expect(() => parseFeatures('default+oas=45')).toThrow('oasBits: must be one of');
    expect(() => parseFeatures('default+warp')).toThrow("'+warp' names no boolean feature");
  });
});

describe('--features widths from the command line', () => {
  it('run --features default+ssidsize=16: the machine boots with 16-bit SubstreamIDs; a bad width exits 2 with one line', async () => {
    const r = await runCli(['run', '--features', 'default+ssidsize=16', '--seconds', '0.1', '--cpus', '1', '--json'], 120_000);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.profile).toBe('default+ssidsize=16');
    expect(out.features.ssidBits).toBe(16);
    const bad = await runCli(['run', '--features', 'default+ssidsize=99']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toEqual(['run: --features default+ssidsize=99.ssidBits: must be 0..20 (IDR1.SSIDSIZE)']);
  });
});
