import type { TaskSpec } from '@tessera/model';

export interface PoolLimits {
  /** Tasks running at once, over all runs. */
  parallelism: number;
  /** RAM pool in MB (Kaapana's NODE_RAM): the sum of running tasks' ram_mb stays below it. */
  ramMb: number;
  /** GPU memory pool in MB (Kaapana's NODE_GPU_*): 0 when the machine has no GPU. */
  gpuMemMb: number;
}

/** Book-keeping of the slots and resource pools that bound what runs at once. */
export class ResourcePool {
  readonly limits: PoolLimits;
  #running = 0;
  #ramMb = 0;
  #gpuMemMb = 0;

  constructor(limits: PoolLimits) {
    this.limits = limits;
  }

  /** Why a task can never run here, or undefined if it can once enough is free. */
  neverFits(task: TaskSpec): string | undefined {
    const ram = task.resources?.ram_mb ?? 0;
    const gpu = task.resources?.gpu_mem_mb ?? 0;
    if (ram > this.limits.ramMb) {
      return `task "${task.id}" requests ${ram} MB of RAM but the RAM pool has ${this.limits.ramMb} MB in all; lower resources.ram_mb or raise TESSERA_RAM_POOL_MB`;
    }
    if (gpu > this.limits.gpuMemMb) {
      return this.limits.gpuMemMb === 0
        ? `task "${task.id}" requests ${gpu} MB of GPU memory but this platform has no GPU pool; set TESSERA_GPU_POOL_MB on a machine with a GPU`
        : `task "${task.id}" requests ${gpu} MB of GPU memory but the GPU pool has ${this.limits.gpuMemMb} MB in all`;
    }
    return undefined;
  }

  fitsNow(task: TaskSpec): boolean {
    return (
      this.#running < this.limits.parallelism &&
      this.#ramMb + (task.resources?.ram_mb ?? 0) <= this.limits.ramMb &&
      this.#gpuMemMb + (task.resources?.gpu_mem_mb ?? 0) <= this.limits.gpuMemMb
    );
  }

  hasFreeSlot(): boolean {
    return this.#running < this.limits.parallelism;
  }

  acquire(task: TaskSpec): void {
    this.#running++;
    this.#ramMb += task.resources?.ram_mb ?? 0;
    this.#gpuMemMb += task.resources?.gpu_mem_mb ?? 0;
  }

  release(task: TaskSpec): void {
    this.#running--;
    this.#ramMb -= task.resources?.ram_mb ?? 0;
    this.#gpuMemMb -= task.resources?.gpu_mem_mb ?? 0;
  }

  usage(): { running: number; ramMb: number; gpuMemMb: number } {
    return { running: this.#running, ramMb: this.#ramMb, gpuMemMb: this.#gpuMemMb };
  }
}
