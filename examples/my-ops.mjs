// Your own kernel code, loaded into every CPU worker (System.boot({ extraOps })): each export of `ops`
// is an operation (kernel, request) => result that the host calls with sys.extraOp(cpu, name, request).
import { OFF } from 'smmulab';

export const ops = {
  /** Invalidates one ASID's TLB entries as a driver would: TLBI_NH_ASID, then a CMD_SYNC it waits for. */
  flushAsid(kernel, { asid }) {
    const smmu = kernel.device(); // the SMMU as this CPU's driver probed or joined it
    const ret = smmu.issueCmdWithSync({ op: 'TLBI_NH_ASID', asid, vmid: 0 });
    const cons = smmu.regs.read32(OFF.CMDQ_CONS); // an MMIO read, as the driver does it
    kernel.platform.log('info', `my-driver: flushed ASID ${asid}: ret ${ret}, CMDQ_CONS ${cons.toString(16)}`);
    return { ret, cons };
  },
};
