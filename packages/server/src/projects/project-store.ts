import { randomUUID } from 'node:crypto';
import type { Kysely, NamedMigration } from '@tessera/db';
import { TesseraError } from '@tessera/model';
import { PROJECT_NAME_PATTERN } from '@tessera/api';

export interface ProjectsTable {
  id: string;
  name: string;
  description: string | null;
  created_at: number;
}

export interface ProjectTables {
  projects: ProjectsTable;
}

export type Project = ProjectsTable;

/** The project every installation starts with; data goes here unless a project is named. */
export const DEFAULT_PROJECT = 'admin';

export const projectMigrations: NamedMigration[] = [
  {
    name: '2026-11-24-01-projects',
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('projects')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull().unique())
        .addColumn('description', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
    },
  },
];

/** Storage of the projects domain. */
export class ProjectStore {
  readonly #db: Kysely<ProjectTables>;

  constructor(db: Kysely<ProjectTables>) {
    this.#db = db;
  }

  /** Creates the `admin` project if it is missing. */
  async ensureDefault(): Promise<Project> {
    const existing = await this.findByName(DEFAULT_PROJECT);
    return existing ?? this.create({ name: DEFAULT_PROJECT, description: 'The default project.' });
  }

  async create(input: { name: string; description?: string }): Promise<Project> {
    if (!new RegExp(PROJECT_NAME_PATTERN).test(input.name)) {
      throw new TesseraError('TESSERA_INVALID_REQUEST', `project name "${input.name}" is invalid: use 1-63 lower-case letters, digits and "-", starting and ending with a letter or digit`, {
        details: [{ where: 'name', message: `must match ${PROJECT_NAME_PATTERN}` }],
      });
    }
    if (await this.findByName(input.name)) throw new TesseraError('TESSERA_CONFLICT', `project "${input.name}" already exists`);
    const project: Project = { id: randomUUID(), name: input.name, description: input.description ?? null, created_at: Date.now() };
    await this.#db.insertInto('projects').values(project).execute();
    return project;
  }

  async list(): Promise<Project[]> {
    return this.#db.selectFrom('projects').selectAll().orderBy('name').execute();
  }

  async findByName(name: string): Promise<Project | undefined> {
    return this.#db.selectFrom('projects').selectAll().where('name', '=', name).executeTakeFirst();
  }

  async findById(id: string): Promise<Project | undefined> {
    return this.#db.selectFrom('projects').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /** The project with this name, or a 404 that lists how to create it. */
  async require(name: string): Promise<Project> {
    const p = await this.findByName(name);
    if (!p) throw new TesseraError('TESSERA_NOT_FOUND', `project "${name}" does not exist; create it with \`tessera projects create ${name}\` or POST /api/projects`);
    return p;
  }
}
