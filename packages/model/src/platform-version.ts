/** Tessera's version: extensions declare the range of it they work with (`platform` in their manifest). */
export const PLATFORM_VERSION = '0.1.0';
