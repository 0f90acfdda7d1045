import { describe, expect, it } from 'vitest';
import { defineOperator, defineWorkflow } from './workflow.ts';
import { getInput } from './platform-operators.ts';

const work = defineOperator({ name: 'work', process: { command: ['true'] } });

describe('needsData and keepOutputs', () => {
  it('needs data by default when a first task is getInput(), not otherwise', () => {
    const reads = defineWorkflow({ id: 'reads' });
    reads.task(work, { input: reads.task(getInput()) });
    expect(reads.toDagSpec().needs_data).toBe(true);
    const plain = defineWorkflow({ id: 'plain' });
    plain.task(work);
    expect(plain.toDagSpec().needs_data).toBe(false);
  });

  it('takes needsData as given', () => {
    const wf = defineWorkflow({ id: 'given', needsData: true });
    wf.task(work);
    expect(wf.toDagSpec().needs_data).toBe(true);
    const off = defineWorkflow({ id: 'off', needsData: false });
    off.task(work, { input: off.task(getInput()) });
    expect(off.toDagSpec().needs_data).toBe(false);
  });

  it('writes keep_outputs only for an operator that keeps them', () => {
    const wf = defineWorkflow({ id: 'keep' });
    wf.task(defineOperator({ name: 'resumes', process: { command: ['true'] }, keepOutputs: true }));
    wf.task(work);
    const [resumes, plain] = wf.toDagSpec().tasks;
    expect(resumes!.keep_outputs).toBe(true);
    expect(plain).not.toHaveProperty('keep_outputs');
  });
});
