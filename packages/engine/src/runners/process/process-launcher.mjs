// The Node launcher: starts local processes on request when the native one
// (native/tessera-launcher.c, ADR 17) cannot be built. Same protocol, same behaviour;
// its starts cost a fork of a small Node process, which grows with the machine's fork cost.
// Plain JavaScript on purpose: it runs with `node` alone, without the TypeScript loader.
//
// stdin: requests, each a sequence of NUL-terminated fields:
//   spawn, id, cwd, log file, status file ("" for none), argc, argv..., envc, env ("K=V")...
//   arm, id, after id, cwd, log file, status file, argc, argv..., envc, env...
//   disarm, id
// stdout: one line per event
//   started <id> <pid> | error <id> <stage> <ERRNO> <message> | exit <id> <code|-> <signal number|->
//   dropped <id> <reason>
// An armed request starts when the process of <after id> exits with code 0, before that
// exit is reported; it is dropped when that process ends otherwise or is not running, on
// disarm, or when stdin ends (ADR 18).
// Each process leads a new session, with stdout and stderr appended to its log file. When
// it ends, what it left in its group is killed, its exit status is written to the status
// file (a temporary file renamed) and then reported. When stdin ends the launcher stays
// until its processes have ended and their status is written, then exits.
import { spawn } from 'node:child_process';
import { closeSync, openSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';

let inputClosed = false;
let outputBroken = false;
let running = 0;
/** Ids of the requests whose processes run. */
const live = new Set();
/** Armed requests by id: { after, start() }. */
const armed = new Map();
const send = (line) => {
  if (!outputBroken) process.stdout.write(`${line}\n`);
};
// The server decides when tasks stop: a Ctrl-C or hang-up meant for it must not end the launcher.
process.on('SIGINT', () => undefined);
process.on('SIGHUP', () => undefined);
process.stdout.on('error', () => {
  outputBroken = true;
});
process.stderr.on('error', () => undefined);

const oneLine = (s) => String(s).replace(/[\r\n]+/g, ' ');
const fail = (id, stage, err, what) => send(`error ${id} ${stage} ${err.code ?? 'EUNKNOWN'} ${oneLine(`${what}: ${err.message}`)}`);

function writeStatus(path, code, signal) {
  try {
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ code, signal })}\n`);
    renameSync(tmp, path);
  } catch (err) {
    process.stderr.write(`tessera launcher: could not record an exit status in ${path}: ${err.message}\n`);
  }
}

function ended() {
  running--;
  if (inputClosed && running === 0) process.exit(0);
}

function dropArmed(id, reason) {
  armed.delete(id);
  send(`dropped ${id} ${reason}`);
}

function start(id, cwd, logPath, status, argv, env) {
  try {
    if (!statSync(cwd).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
  } catch (err) {
    return fail(id, 'cwd', err, `the working directory ${cwd}`);
  }
  // A status file of an earlier start of the same try must not be taken for this one's.
  if (status) rmSync(status, { force: true });
  let log;
  try {
    log = openSync(logPath, 'a');
  } catch (err) {
    return fail(id, 'log', err, `cannot open the log file ${logPath}`);
  }
  let child;
  try {
    child = spawn(argv[0], argv.slice(1), { cwd, env, stdio: ['ignore', log, log], detached: true });
  } catch (err) {
    closeSync(log);
    return fail(id, 'exec', err, `could not start ${argv[0]}`);
  }
  closeSync(log);
  if (child.pid === undefined) {
    child.once('error', (err) => fail(id, 'exec', err, `could not start ${argv[0]}`));
    return;
  }
  running++;
  live.add(id);
  send(`started ${id} ${child.pid}`);
  child.once('exit', (code, signal) => {
    // Like a container, a process ends with its main process: stop what it left in its group.
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // the group is already empty
    }
    live.delete(id);
    for (const [armedId, a] of armed) {
      if (a.after !== id) continue;
      if (code === 0) {
        armed.delete(armedId);
        a.start();
      } else dropArmed(armedId, 'not-succeeded');
    }
    if (status) writeStatus(status, code, signal);
    send(`exit ${id} ${code ?? '-'} ${signal ? constants.signals[signal] : '-'}`);
    ended();
  });
}

let buffered = Buffer.alloc(0);
/** Takes whole requests off the front of the input; false when the protocol is out of step. */
function takeRequests() {
  for (;;) {
    const fields = [];
    let pos = 0;
    const next = () => {
      const nul = buffered.indexOf(0, pos);
      if (nul < 0) return undefined;
      const f = buffered.toString('utf8', pos, nul);
      pos = nul + 1;
      return f;
    };
    const op = next();
    if (op === undefined) return true;
    if (op === 'disarm') {
      const id = next();
      if (id === undefined) return true;
      buffered = buffered.subarray(pos);
      if (armed.has(id)) dropArmed(id, 'disarmed');
      continue;
    }
    if (op !== 'spawn' && op !== 'arm') return false;
    fields.push(op);
    for (let i = 1; i < (op === 'arm' ? 7 : 6); i++) {
      const f = next();
      if (f === undefined) return true;
      fields.push(f);
    }
    if (op === 'arm') fields.splice(2, 1).forEach((after) => fields.push(after));
    const argc = Number(fields[5]);
    if (!Number.isInteger(argc) || argc < 1) return false;
    const argv = [];
    for (let i = 0; i < argc; i++) {
      const f = next();
      if (f === undefined) return true;
      argv.push(f);
    }
    const envcText = next();
    if (envcText === undefined) return true;
    const envc = Number(envcText);
    if (!Number.isInteger(envc) || envc < 0) return false;
    const env = {};
    for (let i = 0; i < envc; i++) {
      const f = next();
      if (f === undefined) return true;
      const eq = f.indexOf('=');
      env[f.slice(0, eq)] = f.slice(eq + 1);
    }
    buffered = buffered.subarray(pos);
    if (op === 'spawn') start(fields[1], fields[2], fields[3], fields[4], argv, env);
    else if (!live.has(fields[6])) send(`dropped ${fields[1]} gone`);
    else armed.set(fields[1], { after: fields[6], start: () => start(fields[1], fields[2], fields[3], fields[4], argv, env) });
  }
}

process.stdin.on('data', (chunk) => {
  if (inputClosed) return;
  buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
  if (!takeRequests()) {
    process.stderr.write('tessera launcher: a malformed request: the protocol is out of step, taking no more\n');
    inputClosed = true;
    for (const id of [...armed.keys()]) dropArmed(id, 'input-closed');
    if (running === 0) process.exit(0);
  }
});
process.stdin.on('end', () => {
  inputClosed = true;
  // The server is gone: it cannot take over what would start.
  for (const id of [...armed.keys()]) dropArmed(id, 'input-closed');
  if (running === 0) process.exit(0);
});
