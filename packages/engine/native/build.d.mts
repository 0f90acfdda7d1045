/** Types of build.mjs (plain JavaScript, run by npm's install script before TypeScript is there). */
export declare const LAUNCHER_SOURCE: string;
export declare const LAUNCHER_NAME: string;
/** The path of an up-to-date tessera-launcher, built if needed, or why there is none. */
export declare function ensureLauncher(): { path: string } | { reason: string };
