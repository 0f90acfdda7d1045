// Moved to ../http/read-body.ts; kept until dicomweb-routes.ts imports it from there.
export { limitBytes, readBody } from '../http/read-body.ts';
