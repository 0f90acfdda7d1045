import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { CliError } from './api-client.ts';
import { Answers, type AnswerStreams } from './answers.ts';

/** A terminal: stdin in raw mode or not, what is written to stderr. */
function terminal(): { streams: AnswerStreams; input: PassThrough; written: () => string; raw: boolean[] } {
  const input = new PassThrough();
  const output = new PassThrough();
  let written = '';
  output.on('data', (d: Buffer) => (written += d.toString()));
  const raw: boolean[] = [];
  const tty = Object.assign(input, { isTTY: true, setRawMode: (r: boolean) => raw.push(r) });
  return { streams: { input: tty, output }, input, written: () => written, raw };
}

describe('answers', () => {
  it('asks a secret on a terminal without echo; backspace takes a character back; raw mode is left', async () => {
    const t = terminal();
    const answers = new Answers(t.streams);
    expect(answers.interactive).toBe(true);
    const secret = answers.secret('password: ', 'the password');
    t.input.write('hunter');
    t.input.write('2x\u007f2\r');
    expect(await secret).toBe('hunter22');
    expect(t.written()).toBe('password: \n');
    expect(t.raw).toEqual([true, false]);
  });

  it('cancels a secret at Ctrl-C with exit code 130', async () => {
    const t = terminal();
    const secret = new Answers(t.streams).secret('password: ', 'the password');
    t.input.write('abc\u0003');
    const err = await secret.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CliError);
    expect((err as CliError).exitCode).toBe(130);
    expect(t.raw).toEqual([true, false]);
  });

  it("takes stdin's lines in order without a terminal, and names what is missing when it ends", async () => {
    const input = new PassThrough();
    const answers = new Answers({ input, output: new PassThrough() });
    expect(answers.interactive).toBe(false);
    input.end('alice\r\n  pass word \n');
    expect(await answers.line('user name: ', 'the user name')).toBe('alice');
    expect(await answers.secret('password: ', 'the password')).toBe('  pass word ');
    const err = await answers.secret('new password: ', 'the new password').catch((e: unknown) => e);
    expect((err as CliError).message).toContain('expected the new password on line 3 of stdin');
    expect((err as CliError).exitCode).toBe(2);
    answers.close();
  });
});
