import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = import.meta.dirname;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : /\.tsx?$/.test(e.name) && !/\.test\.tsx?$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

/** Every import or export of `@tessera/api` in a file, and whether the whole statement is type-only. */
function contractImports(file: string): { statement: string; typeOnly: boolean }[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: { statement: string; typeOnly: boolean }[] = [];
  const visit = (node: ts.Node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      if (node.moduleSpecifier.text === '@tessera/api') {
        // `import { type X }` is not enough: it leaves `import {} from '@tessera/api'` behind, which loads the module.
        const typeOnly = ts.isImportDeclaration(node) ? node.importClause?.isTypeOnly === true : node.isTypeOnly;
        out.push({ statement: node.getText(source).replace(/\s+/g, ' '), typeOnly });
      }
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [arg] = node.arguments;
      if (arg && ts.isStringLiteral(arg) && arg.text === '@tessera/api') out.push({ statement: node.getText(source), typeOnly: false });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

describe("the UI's use of the HTTP contract", () => {
  const uses = sources(SRC).flatMap((file) => contractImports(file).map((u) => ({ file: relative(SRC, file), ...u })));

  it('takes the answer types from @tessera/api in api.ts', () => {
    expect(uses.some((u) => u.file === 'api.ts')).toBe(true);
  });

  it('takes only types, so the bundle carries none of its code (TypeBox, the schemas)', () => {
    expect(uses.filter((u) => !u.typeOnly)).toEqual([]);
  });

  it('reaches it only through api.ts, the one door to the server', () => {
    expect(uses.filter((u) => u.file !== 'api.ts')).toEqual([]);
  });
});
