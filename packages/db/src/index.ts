export * from './database.ts';
export { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
