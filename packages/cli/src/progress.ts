/**
 * One line of progress on stderr for operations without a known end (downloads):
 * redrawn in place on a terminal, printed every few seconds otherwise so that logs
 * of scripts and CI show it is still moving without drowning in updates.
 */
export class ProgressLine {
  readonly #stream: NodeJS.WritableStream;
  readonly #tty: boolean;
  readonly #quiet: boolean;
  readonly #intervalMs: number;
  readonly #render: () => string;
  #lastDraw = 0;
  #timer: NodeJS.Timeout | undefined;
  #drawn = false;

  /**
   * @param render  the current line (called when it is drawn)
   * @param o.quiet no periodic lines off a terminal (JSON output): only the terminal's line is drawn
   */
  constructor(render: () => string, o: { stream?: NodeJS.WriteStream; quiet?: boolean; intervalMs?: number } = {}) {
    const stream = o.stream ?? process.stderr;
    this.#stream = stream;
    this.#tty = stream.isTTY === true;
    this.#quiet = o.quiet ?? false;
    this.#intervalMs = o.intervalMs ?? 5000;
    this.#render = render;
    if (!this.#tty && !this.#quiet) this.#timer = setInterval(() => this.#stream.write(`${this.#render()}\n`), this.#intervalMs).unref();
  }

  /** Something moved: redraws the terminal's line (at most ten times a second). */
  tick(): void {
    if (!this.#tty) return;
    const now = Date.now();
    if (now - this.#lastDraw < 100) return;
    this.#lastDraw = now;
    this.#stream.write(`\r\x1b[K${this.#render()}`);
    this.#drawn = true;
  }

  /** Ends the progress: the final line stays (on a terminal in place of the moving one). */
  done(final?: string): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    const line = final ?? this.#render();
    if (this.#tty) this.#stream.write(`\r\x1b[K${line}\n`);
    else if (!this.#quiet) this.#stream.write(`${line}\n`);
    this.#drawn = false;
  }

  /** Ends the progress without a final line (on errors): a terminal's line is cleared. */
  clear(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#tty && this.#drawn) this.#stream.write('\r\x1b[K');
  }
}

/**
 * Things per second since `startedAt`; undefined in the first half second, too early to
 * mean anything, unless it is the `final` rate of an operation that ended.
 */
export function rate(count: number, startedAt: number, final = false): number | undefined {
  const s = (Date.now() - startedAt) / 1000;
  return !final && s < 0.5 ? undefined : count / Math.max(s, 0.001);
}
