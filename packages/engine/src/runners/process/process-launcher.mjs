// The process launcher: a small helper process that starts the process runner's tasks.
//
// Why a separate process (ADR 5): fork() copies the parent's page tables, so a
// spawn from the server (hundreds of MB mapped) costs ~3 ms on the server's only
// thread; from this process (~40 MB, nothing else to do) it costs about what a shell
// loop pays, and the server's thread stays free. Plain JavaScript on purpose: it
// runs with `node` alone, without the TypeScript loader, to stay small.
//
// Protocol, one JSON object per line.
//   stdin:  {"op":"spawn","id":1,"argv":[...],"cwd":"...","env":{...},"log":"/path","status":"/path"}
//   stdout: {"ev":"started","id":1,"pid":123}
//           {"ev":"error","id":1,"message":"...","code":"ENOENT"}
//           {"ev":"exit","id":1,"code":0,"signal":null}
// When a task ends, its exit status is also written to the file `status` (atomically:
// a temporary file renamed), so that a server killed before it recorded the end finds
// it at its next start. When stdin ends (the server stopped or died) the launcher stays
// until its tasks have ended and their status is written, then exits.
import { spawn } from 'node:child_process';
import { closeSync, openSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';

let inputClosed = false;
let outputBroken = false;
let running = 0;
const send = (event) => {
  if (!outputBroken) process.stdout.write(`${JSON.stringify(event)}\n`);
};
// The server decides when tasks stop: a Ctrl-C or hang-up meant for it must not end the
// launcher, which would leave its tasks without anyone to record their end.
process.on('SIGINT', () => undefined);
process.on('SIGHUP', () => undefined);
// A dead server's end of the pipe: nothing more to tell it.
process.stdout.on('error', () => {
  outputBroken = true;
});
process.stderr.on('error', () => undefined);

function writeStatus(path, code, signal) {
  try {
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, `${JSON.stringify({ code, signal })}\n`);
    renameSync(tmp, path);
  } catch (err) {
    process.stderr.write(`tessera process launcher: could not record an exit status in ${path}: ${err.message}\n`);
  }
}

function ended() {
  running--;
  if (inputClosed && running === 0) process.exit(0);
}

function start(m) {
  let log;
  try {
    log = openSync(m.log, 'a');
  } catch (err) {
    send({ ev: 'error', id: m.id, message: `cannot open the log file ${m.log}: ${err.message}`, code: err.code });
    return;
  }
  let child;
  try {
    child = spawn(m.argv[0], m.argv.slice(1), { cwd: m.cwd, env: m.env, stdio: ['ignore', log, log], detached: true });
  } catch (err) {
    writeSync(log, `tessera: could not start ${JSON.stringify(m.argv[0])}: ${err.message}\n`);
    closeSync(log);
    send({ ev: 'error', id: m.id, message: err.message, code: err.code });
    return;
  }
  closeSync(log);
  if (child.pid === undefined) {
    child.once('error', (err) => send({ ev: 'error', id: m.id, message: err.message, code: err.code }));
    return;
  }
  running++;
  send({ ev: 'started', id: m.id, pid: child.pid });
  child.once('exit', (code, signal) => {
    // Like a container, a task ends with its main process: stop what it left in its group.
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // the group is already empty
    }
    if (m.status) writeStatus(m.status, code, signal);
    send({ ev: 'exit', id: m.id, code, signal });
    ended();
  });
}

createInterface({ input: process.stdin })
  .on('line', (line) => {
    let m;
    try {
      m = JSON.parse(line);
    } catch {
      process.stderr.write(`tessera process launcher: ignoring a malformed command: ${line.slice(0, 200)}\n`);
      return;
    }
    if (m.op === 'spawn') start(m);
  })
  .on('close', () => {
    inputClosed = true;
    if (running === 0) process.exit(0);
  });
