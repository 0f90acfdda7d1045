import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Takes `<home>/server.pid` for this process. Another live Tessera server holding it
 * stops this start with a message; a file left by a dead one is taken over.
 */
export function lockHome(home: string): () => void {
  const file = join(home, 'server.pid');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      return () => {
        try {
          if (readFileSync(file, 'utf8') === String(process.pid)) unlinkSync(file);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(file, 'utf8'));
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new Error(
          `another Tessera server (pid ${pid}) uses ${home}; stop it first, or give this one another TESSERA_HOME ` +
            `(if pid ${pid} is not a Tessera server, delete ${file})`,
        );
      }
      unlinkSync(file); // left by a server that is gone
    }
  }
  throw new Error(`could not take ${file}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
