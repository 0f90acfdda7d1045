import { createInterface, type Interface } from 'node:readline';
import { CliError } from './api-client.ts';

/** Where answers come from and questions go: a terminal's stdin and stderr, or streams of a test. */
export interface AnswerStreams {
  input: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  output: NodeJS.WritableStream;
}

/**
 * What a command asks a person (user name, passwords): on a terminal it asks on stderr,
 * a secret without echo; without one (a script, a pipe) it takes stdin's lines in order,
 * so `printf 'alice\n%s\n' "$PW" | tessera login` works. A secret is never echoed nor
 * printed.
 */
export class Answers {
  readonly #s: AnswerStreams;
  #lines: Interface | undefined;
  #queue: string[] = [];
  #waiting: ((line: string | undefined) => void) | undefined;
  #ended = false;
  #lineNo = 0;

  constructor(streams: AnswerStreams = { input: process.stdin, output: process.stderr }) {
    this.#s = streams;
  }

  /** True when a person answers on a terminal; false when answers are stdin's lines. */
  get interactive(): boolean {
    return this.#s.input.isTTY === true && typeof this.#s.input.setRawMode === 'function';
  }

  /** A line of text: asked with `question` on a terminal, else the next line of stdin (`what` names it when stdin ends first). */
  async line(question: string, what: string): Promise<string> {
    if (!this.interactive) return this.#next(what);
    const rl = createInterface({ input: this.#s.input, output: this.#s.output, terminal: true });
    try {
      return await new Promise<string>((resolve, reject) => {
        rl.once('SIGINT', () => reject(new CliError('canceled', { exitCode: 130 })));
        rl.question(question, resolve);
      });
    } finally {
      rl.close();
    }
  }

  /** A secret: asked without echo on a terminal, else the next line of stdin. */
  async secret(question: string, what: string): Promise<string> {
    if (!this.interactive) return this.#next(what);
    return this.#hidden(question);
  }

  /** Stops reading stdin (so that the process can end). */
  close(): void {
    this.#lines?.close();
  }

  async #next(what: string): Promise<string> {
    this.#lineNo++;
    if (!this.#lines) {
      this.#lines = createInterface({ input: this.#s.input, terminal: false, crlfDelay: Infinity });
      this.#lines.on('line', (l) => {
        if (this.#waiting) {
          const w = this.#waiting;
          this.#waiting = undefined;
          w(l);
        } else this.#queue.push(l);
      });
      this.#lines.on('close', () => {
        this.#ended = true;
        this.#waiting?.(undefined);
        this.#waiting = undefined;
      });
    }
    const queued = this.#queue.shift();
    const line = queued !== undefined ? queued : this.#ended ? undefined : await new Promise<string | undefined>((resolve) => (this.#waiting = resolve));
    if (line === undefined) {
      throw new CliError(`expected ${what} on line ${this.#lineNo} of stdin: there is no terminal to ask on, so answers are read from stdin, one a line`, { exitCode: 2 });
    }
    return line;
  }

  /** Reads a line in raw mode, echoing nothing; Ctrl-C cancels, backspace takes back a character. */
  #hidden(question: string): Promise<string> {
    const input = this.#s.input;
    this.#s.output.write(question);
    input.setRawMode!(true);
    input.resume();
    return new Promise<string>((resolve, reject) => {
      let value = '';
      const finish = (err?: CliError): void => {
        input.off('data', onData);
        input.setRawMode!(false);
        input.pause();
        this.#s.output.write('\n');
        if (err) reject(err);
        else resolve(value);
      };
      const onData = (chunk: Buffer | string): void => {
        for (const ch of typeof chunk === 'string' ? chunk : chunk.toString('utf8')) {
          if (ch === '\r' || ch === '\n') return finish();
          if (ch === '\u0003') return finish(new CliError('canceled', { exitCode: 130 }));
          if (ch === '\u0004') {
            if (value === '') return finish(new CliError('canceled: no answer', { exitCode: 130 }));
            continue;
          }
          if (ch === '\u007f' || ch === '\b') {
            value = [...value].slice(0, -1).join('');
            continue;
          }
          if (ch === '\u001b') return; // an escape sequence (arrow keys): the rest of this chunk is part of it
          if (ch >= ' ') value += ch;
        }
      };
      input.on('data', onData);
    });
  }
}
