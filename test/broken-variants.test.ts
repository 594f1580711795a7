// Testing the tester: each known-broken variant of the driver (DRIVER_BUGS, src/protocol/ops/smmu.ts)
// is caught by a multi-CPU campaign within the number of seeds stated here, and the failing seed
// replays: the reproduce command the campaign printed fails again with the same problems. The correct
// driver passes the same campaign. Everything goes through the command line, as a user runs it.
//
// Seeds stated (each campaign below must find at least one failure among them):
//   prod-before-valid    cmdq-contention, 4 CPUs, random interleaving: 3 seeds (seeds 1-6 all fail today)
//   cmdq-no-shared-lock  cmdq-contention, 4 CPUs, PCT depth 10 over 3000 steps, each change point
//                        preempting a CPU for 100 us: 6 seeds (of seeds 1-12, 5 fail today: 1, 4, 5, 6, ...)
//   prepare-no-reentry   nested-reset on 2 CPUs (the second one stressing the command queue): 2 seeds
//   done-lifts-fence     nested-reset on 2 CPUs: 2 seeds

import { describe, expect, it } from 'vitest';
import { runCli } from './fixtures/run-cli.ts';
import { summaryOf } from './fixtures/campaign-summary.ts';

/** A campaign on the command line, with its summary; `seeds` from 1. */
async function campaign(args: string[], seeds: number) {
  const r = await runCli(['campaign', '--count', String(seeds), '--workers', '2', '--json', ...args], 600_000);
  expect(r.code, r.stderr).toBeLessThan(2);
  return { r, s: summaryOf(r, `campaign ${args.join(' ')}`) };
}

/** Runs the reproduce command a failure printed; it must fail again with the same problems. */
async function replays(reproduce: string, problems: string[]): Promise<void> {
  const argv = reproduce.split(' ');
  expect(argv[0]).toBe('smmulab');
  const again = await runCli([...argv.slice(1), '--json', '--workers', '0'], 600_000);
  const s = summaryOf(again, reproduce);
  expect(again.code, again.stderr).toBe(1);
  expect(s.failed).toBe(1);
  expect(s.failures[0]!.problems).toEqual(problems);
}

describe('broken driver variants are caught by a multi-CPU campaign and replay from the printed seed', () => {
  const cases = [
    { bug: 'prod-before-valid', args: ['--scenario', 'cmdq-contention'], seeds: 3, shows: /command count|CMD_SYNC|hang/ },
    { bug: 'cmdq-no-shared-lock', args: ['--scenario', 'cmdq-contention', '--lockstep', 'pct:10:3000'], seeds: 6, shows: /CMD_SYNC\(s\) timed out|command count|hang/ },
    { bug: 'prepare-no-reentry', args: ['--scenario', 'nested-reset', '--cpus', '2'], seeds: 2, shows: /expected 0[12]:00\.0 (resets|fenced|atsEnabled)/ },
    { bug: 'done-lifts-fence', args: ['--scenario', 'nested-reset', '--cpus', '2'], seeds: 2, shows: /expected 02:00\.0 (fenced|atsEnabled)/ },
  ] as const;

  it.each(cases)('$bug: caught within $seeds seeds; the printed seed replays', async ({ bug, args, seeds, shows }) => {
    const { r, s } = await campaign([...args, '--driver-bug', bug], seeds);
    expect(s.failed, `no failure in ${seeds} seeds`).toBeGreaterThan(0);
    const f = s.failures[0]!;
    expect(f.problems.join('\n')).toMatch(shows);
    expect(f.reproduce).toContain(`--driver-bug ${bug}`);
    expect(f.reproduce).toContain(`--seed-start ${f.seed} --count 1`);
    // The failure is on stderr with its seed and the command, as a user sees it.
    expect(r.stderr).toContain(`seed ${f.seed} failed`);
    expect(r.stderr).toContain(`reproduce: ${f.reproduce}`);
    await replays(f.reproduce, f.problems);
  });

  it('the correct driver passes the same campaigns', async () => {
    for (const { args } of cases) {
      const { r, s } = await campaign([...args], 2);
      expect(s.failed, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      expect(r.code).toBe(0);
    }
  });
});
