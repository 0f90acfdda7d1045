export * from './database.ts';
export { CompiledQuery, sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
