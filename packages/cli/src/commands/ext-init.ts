import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { CliError } from '../api-client.ts';

const NAME = /^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$/;

/** `tessera ext init <name> --kind workflow`: a working extension to start from. */
export async function extInitCommand(name: string, o: { kind: string; dir?: string }): Promise<number> {
  if (!NAME.test(name)) throw new CliError(`"${name}" is not a valid extension name: use lower-case letters, digits and "-" (e.g. lung-seg)`, { exitCode: 2 });
  if (o.kind !== 'workflow' && o.kind !== 'application') throw new CliError(`--kind "${o.kind}" is not a kind of extension; use workflow or application`, { exitCode: 2 });
  const dir = resolve(o.dir ?? '.', name);
  if (existsSync(dir)) throw new CliError(`${dir} already exists; pick another name or folder (--dir)`, { exitCode: 1 });
  const files = o.kind === 'application' ? applicationTemplate(name) : workflowTemplate(name);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), content);
  }
  const shown = relative(process.cwd(), dir) || '.';
  const list = Object.keys(files).sort().map((f) => `  ${f}`).join('\n');
  if (o.kind === 'application') {
    console.log(`created ${shown}/ (an application extension: a Python web app served on a subpath of the platform)
${list}

next:
  tessera ext dev ${shown}         install it into the running platform; every save reinstalls it and relaunches its instances
  tessera app launch ${name}`);
    return 0;
  }
  console.log(`created ${shown}/ (a workflow extension: get-input -> a Python container -> put-files)
${list}

next:
  tessera ext test ${shown}        run it on the bundled sample CT in a throwaway platform
  tessera ext dev ${shown}         install it into the running platform and reinstall on every save
  tessera run ${name} --dataset <dataset>`);
  return 0;
}

function workflowTemplate(name: string): Record<string, string> {
  const image = `tessera-ext/${name}:0.1.0`;
  const title = name.split('-').map((w) => w[0]!.toUpperCase() + w.slice(1)).join(' ');
  return {
    'tessera-extension.json': `${JSON.stringify({
      name,
      version: '0.1.0',
      kind: 'workflow',
      title,
      description: 'Summarizes each series: its files and image sizes, as JSON in the result bucket.',
      platform: '>=0.1.0 <1',
      workflows: [`workflows/${name}.ts`],
      images: [{ name: image, context: 'processing' }],
    }, null, 2)}\n`,
    'package.json': `${JSON.stringify({ name, version: '0.1.0', private: true, type: 'module' }, null, 2)}\n`,
    '.gitignore': 'dist/\n',
    [`workflows/${name}.ts`]: `import { defineOperator, defineWorkflow, getInput, putFiles } from '@tessera/sdk';

// The image is built from processing/ (see "images" in tessera-extension.json).
// Change its tag together with the extension's version, so that runs of the old
// version keep their image.
const IMAGE = '${image}';

const summarize = defineOperator({
  name: 'summarize',
  title: 'Summarize each series',
  // One container runs for the task and handles every series of the batch, whatever the
  // level: the level only decides which output dirs Tessera makes (and empties before each
  // try): 'batch_element', one per series, batch/<series>/<out_dir>/ (where summarize.py
  // writes); 'batch', one for the run, <out_dir>/.
  level: 'batch_element',
  container: { image: IMAGE },
  timeout: 600,
  resources: { ramMb: 256 },
});

const workflow = defineWorkflow({
  id: '${name}',
  title: '${title}',
  description: 'Writes a JSON summary of each series into the result bucket.',
  workflowForm: {
    type: 'object',
    properties: {
      note: { type: 'string', title: 'Note', default: 'hello', description: 'Copied into every summary (reaches the container as NOTE).' },
    },
    additionalProperties: false,
  },
});

const input = workflow.task(getInput()); // the selected series, one folder each
const summary = workflow.task(summarize, { input });
workflow.task(putFiles(), { input: summary }); // into the project's result bucket

export default workflow;
`,
    'processing/Dockerfile': `# tessera/base-python:bookworm is Debian bookworm with python3. Add what you need:
#   RUN apt-get update && apt-get install -y --no-install-recommends python3-pydicom && rm -rf /var/lib/apt/lists/*
FROM tessera/base-python:bookworm
COPY summarize.py /app/summarize.py
ENTRYPOINT ["python3", "-u", "/app/summarize.py"]
`,
    'processing/summarize.py': `"""One processing step, following Tessera's operator contract (Kaapana's):

WORKFLOW_DIR/BATCH_NAME/<series>/OPERATOR_IN_DIR/   the input files of each series
WORKFLOW_DIR/BATCH_NAME/<series>/OPERATOR_OUT_DIR/  where this step writes
Every workflow_form field arrives upper-cased as an environment variable (NOTE).
Exit 0 for success; anything else fails the task, with this log shown.
"""
import json
import os
import struct
import sys
from pathlib import Path

workflow_dir = Path(os.environ["WORKFLOW_DIR"])
batch = workflow_dir / os.environ.get("BATCH_NAME", "batch")
in_dir = os.environ["OPERATOR_IN_DIR"]
out_dir = os.environ["OPERATOR_OUT_DIR"]
note = os.environ.get("NOTE", "")


def image_size(path):
    """Rows and Columns of an explicit little-endian DICOM file, or None (no DICOM library needed)."""
    data = path.read_bytes()
    if data[128:132] != b"DICM":
        return None
    rows = data.find(b"\\x28\\x00\\x10\\x00US")
    cols = data.find(b"\\x28\\x00\\x11\\x00US")
    if rows < 0 or cols < 0:
        return None
    return struct.unpack_from("<H", data, rows + 8)[0], struct.unpack_from("<H", data, cols + 8)[0]


series_dirs = sorted(p for p in batch.iterdir() if p.is_dir()) if batch.is_dir() else []
if not series_dirs:
    sys.exit(f"no input series under {batch}: run the workflow on a dataset (--dataset) or on series")

for series in series_dirs:
    files = sorted(p for p in (series / in_dir).glob("*") if p.is_file())
    sizes = {f"{r}x{c}" for r, c in filter(None, (image_size(f) for f in files))}
    summary = {"series": series.name, "files": len(files), "bytes": sum(f.stat().st_size for f in files), "image_sizes": sorted(sizes), "note": note}
    out = series / out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\\n")
    print(f"{series.name}: {len(files)} files, {', '.join(sorted(sizes)) or 'no images'}")
`,
    'tessera-test.json': `${JSON.stringify({
      cases: [
        {
          name: 'summarizes the sample CT',
          workflow: name,
          data: 'sample:ct',
          form: { note: 'from ext test' },
          expect: { state: 'success', files: ['batch/*/summarize/summary.json'], results: ['**/summary.json'] },
        },
      ],
    }, null, 2)}\n`,
    'README.md': `# ${title}

A Tessera workflow extension: \`get-input\` places each selected series in the run's
workflow dir, \`summarize\` (a Python container, \`processing/\`) writes a JSON summary
per series, and \`put-files\` copies the summaries into the project's result bucket.

| file | what it is |
|---|---|
| \`tessera-extension.json\` | the manifest: name, version, workflows, images, parameters |
| \`workflows/${name}.ts\` | the DAG, written with \`@tessera/sdk\` |
| \`processing/\` | the container: \`Dockerfile\` and \`summarize.py\` |
| \`tessera-test.json\` | what \`tessera ext test\` runs and checks |

## Try it

    tessera ext test .          # a throwaway platform: the bundled sample CT, then checks tessera-test.json
    tessera ext dev .           # installs into the running platform; saves reinstall it
    tessera run ${name} --dataset <dataset> --form note=hi
    tessera results --run <run> --download results/

## Ship it

    tessera ext build .         # dist/${name}-0.1.0.tgz, images inside, installable offline
    tessera ext install dist/${name}-0.1.0.tgz --url http://other-server:8080

When you change the version, change the image tag in \`tessera-extension.json\` and in
\`workflows/${name}.ts\` with it. To debug one step, run it alone on a past run's
workflow dir: \`tessera ext run-operator <run> summarize\`.
`,
  };
}

function applicationTemplate(name: string): Record<string, string> {
  const title = name.split('-').map((w) => w[0]!.toUpperCase() + w.slice(1)).join(' ');
  return {
    'tessera-extension.json': `${JSON.stringify({
      name,
      version: '0.1.0',
      kind: 'application',
      title,
      description: "A web app that lists the files of the project's result bucket.",
      platform: '>=0.1.0 <1',
      parameters: { heading: { type: 'string', default: title, description: 'The heading of the page (HEADING).' } },
      app: {
        process: { command: ['python3', 'app.py'] },
        ingress: 'subpath',
        health: { path: '/healthz', timeout_s: 30 },
        instances: 'single',
        mounts: { results: true },
      },
    }, null, 2)}\n`,
    'package.json': `${JSON.stringify({ name, version: '0.1.0', private: true, type: 'module' }, null, 2)}\n`,
    '.gitignore': 'dist/\n',
    'app.py': `"""A Tessera application: a web app served at INGRESS_PATH on PORT (127.0.0.1).

Tessera starts it with the extension folder as working directory and gives it:
  PORT           where to listen (on 127.0.0.1)
  INGRESS_PATH   the subpath it is served at, e.g. /applications/project/admin/release/${name}
  RESULTS_DIR    the project's result bucket (manifest: "mounts": {"results": true})
  TESSERA_API_URL, TESSERA_PROJECT, and every parameter upper-cased (HEADING)
  TESSERA_API_TOKEN  with access control on: send "Authorization: Bearer <it>" to
                 TESSERA_API_URL; it acts in this project with the launcher's role
It is ready when GET INGRESS_PATH/healthz answers 200 (manifest: "health").
"""
import html
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

BASE = os.environ.get("INGRESS_PATH", "")
RESULTS = Path(os.environ.get("RESULTS_DIR", "."))
HEADING = os.environ.get("HEADING", "${title}")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        path = unquote(self.path.split("?")[0])
        if not path.startswith(BASE + "/"):
            return self.send_error(404)
        path = path[len(BASE):]
        if path == "/healthz":
            return self.reply(200, "text/plain", b"ok\\n")
        if path == "/":
            files = sorted(p.relative_to(RESULTS).as_posix() for p in RESULTS.rglob("*") if p.is_file()) if RESULTS.is_dir() else []
            items = "".join(f'<li><a href="files/{html.escape(f)}">{html.escape(f)}</a></li>' for f in files)
            body = f"<!doctype html><meta charset=utf-8><title>{html.escape(HEADING)}</title><h1>{html.escape(HEADING)}</h1>"
            body += f"<p>{len(files)} files in the project's result bucket</p><ul>{items}</ul>"
            return self.reply(200, "text/html; charset=utf-8", body.encode())
        if path.startswith("/files/"):
            target = (RESULTS / path[len("/files/"):]).resolve()
            if RESULTS.resolve() not in target.parents or not target.is_file():
                return self.send_error(404)
            return self.reply(200, "application/octet-stream", target.read_bytes())
        self.send_error(404)

    def reply(self, status, content_type, body):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


print(f"{HEADING} on 127.0.0.1:{os.environ['PORT']}{BASE}/", flush=True)
ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
`,
    'README.md': `# ${title}

A Tessera application extension: \`app.py\` is a small web app (Python's standard
library) that Tessera serves at \`/applications/project/<project>/release/${name}/\` on the
platform's own port. It lists the files of the project's result bucket.

| file | what it is |
|---|---|
| \`tessera-extension.json\` | the manifest; \`app\` says how to start it, where it is healthy, what it mounts |
| \`app.py\` | the app: listens on 127.0.0.1:$PORT, serves under $INGRESS_PATH |

    tessera ext dev .                  # install; every save reinstalls and relaunches it
    tessera app launch ${name}
    tessera app logs ${name}
    tessera ext build .                # dist/${name}-0.1.0.tgz
`,
  };
}
